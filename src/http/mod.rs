//! The webhooks' path, whose one face to the server is [`Front`]: the public front door
//! (`gate`), its connections to tiny_http (`upstream`) over a private Unix socket
//! (`private`, `hop`), the tiny_http host (`host`) and the webhook application it serves
//! (`webhooks`); and the refusals a listener writes itself (`refusal`).

mod front;
mod gate;
mod hop;
mod host;
mod private;
pub(crate) mod refusal;
mod upstream;
pub mod webhooks;

pub(crate) use front::Front;
