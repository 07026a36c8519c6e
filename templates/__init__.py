"""Jinja2 templates for libvirt XML and guest scripts; shipped with the package."""
