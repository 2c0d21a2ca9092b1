//! The private hop from the front door to tiny_http: what both of its ends agree on. The
//! gate ([`super::gate`]) writes these and the webhooks ([`super::webhooks`]) read them, so
//! neither end imports from the other.

/// The header that carries the caller's address to the webhooks; any copy a client sends
/// is removed by the gate, so it cannot be forged.
pub(crate) const PEER_HEADER: &str = "X-Vonage-Echo-Peer";

/// The name of tiny_http's Unix socket in the front's private directory
/// ([`super::private`]).
pub(crate) const SOCKET_NAME: &str = "webhooks.sock";
