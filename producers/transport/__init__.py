"""How the EdgeProducer's spooled batches leave the device: straight to Kafka, or to the gateway."""

from producers.transport.base import Delivery, Outbound, Transport

__all__ = ["Delivery", "Outbound", "Transport"]
