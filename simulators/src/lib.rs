pub mod placeholder_unused {}
