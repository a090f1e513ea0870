"""Outgoing email over SMTP (``client``) and a local SMTP server that captures messages (``sandbox``)."""
