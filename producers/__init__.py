"""How events get in: the EdgeProducer SDK, the HTTP ingest gateway and the device registry."""
