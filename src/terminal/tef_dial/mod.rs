//! TEF Dial: Brazilian TEF clients driven through the `IntPos.001` file exchange.

pub mod simulator;
