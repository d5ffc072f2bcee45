#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| gridwatch_fuzz::framing(data));
