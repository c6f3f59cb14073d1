"""provision: Ansible-style provisioning over SSH for production Frappe benches."""

__version__ = "0.1.0"
