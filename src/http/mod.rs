//! The webhooks' path: the public front door, the private socket to tiny_http, and the
//! tiny_http loop that answers the answer and event webhooks.

pub(crate) mod gate;
pub(crate) mod private;
pub(crate) mod upstream;
pub mod webhooks;
