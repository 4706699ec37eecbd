"""Typed errors of the runtime and transports. Messages name what went wrong, never a value."""


class MPCError(Exception):
    """Base class of every qbert-mpc runtime error."""


class ConfigError(MPCError):
    """A host config, CLI argument or setting is invalid."""


class PeerError(MPCError):
    """Something went wrong with a named peer."""

    def __init__(self, peer: int, message: str):
        super().__init__(f"P{peer}: {message}")
        self.peer = peer


class PeerTimeout(PeerError):
    """A peer did not send (or connect) within the configured timeout."""


class PeerDisconnected(PeerError):
    """A peer closed its connection or its process died."""


class FrameError(PeerError):
    """A frame from a peer is malformed, truncated, oversized or out of sequence."""


class SessionMismatch(FrameError):
    """A frame belongs to another session."""


class SpecMismatch(FrameError):
    """A peer sent arrays of another ring or shape than this party expects."""


class HandshakeError(PeerError):
    """A connection handshake failed: unexpected rank, duplicate connection or TLS failure."""


class LaunchError(MPCError):
    """Starting or supervising the party processes failed."""
