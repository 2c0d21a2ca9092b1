//! The one way an options type gets its builder setters: `setters! { field: Type, ... }`
//! inside its `impl` writes `pub fn field(mut self, field: Type) -> Self` for each, with
//! the doc comment given, so every options type of the crate is built the same way and no
//! setter is written by hand.

/// Writes a builder setter of the same name for each field listed, with its doc comment.
macro_rules! setters {
    ($($(#[$doc:meta])* $name:ident: $ty:ty),* $(,)?) => {
        $(
            $(#[$doc])*
            pub fn $name(mut self, $name: $ty) -> Self {
                self.$name = $name;
                self
            }
        )*
    };
}
