//! placeholder until the pipeline bench lands
fn main() {}
