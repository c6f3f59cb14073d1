"""``provision onboard``: first contact with a fresh server, bootstrap, hardening, inventory (see flow.py)."""
