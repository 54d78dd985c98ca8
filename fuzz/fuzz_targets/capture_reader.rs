//! Arbitrary bytes as a capture file (plain or gzip): read every frame and decode it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use siphon_wire::capture::CaptureReader;
use siphon_wire::decode::Decoder;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = CaptureReader::from_reader(Box::new(std::io::Cursor::new(data.to_vec())))
    else {
        return;
    };
    let mut decoder = Decoder::with_limits(16, 1_000_000);
    let mut failed = false;
    loop {
        match reader.next_frame() {
            Ok(Some(frame)) => {
                assert!(!failed, "frame after an error");
                let _ = decoder.decode(&frame);
            }
            Ok(None) => break,
            Err(e) => {
                assert!(!failed, "two errors");
                failed = true;
                let _ = e.to_string();
            }
        }
    }
    assert!(matches!(reader.next_frame(), Ok(None)));
    let _ = reader.bytes_consumed();
});
