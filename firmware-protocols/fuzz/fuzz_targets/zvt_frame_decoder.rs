#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| firmware_protocols_fuzz::zvt_frame_decoder(data));
