"""What people read: the live inspection dashboard and the HTML reports."""
