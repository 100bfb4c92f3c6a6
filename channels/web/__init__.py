"""The local web inbox: thread list, timelines, approvals and new requests, served at ``/``."""

from channels.web.channel import WebChannel

__all__ = ["WebChannel"]
