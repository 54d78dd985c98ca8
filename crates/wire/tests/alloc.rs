//! The hot path allocates nothing: reading frames and decoding Ethernet/IPv4/UDP.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Cursor;
use std::net::SocketAddr;

use siphon_wire::capture::CaptureReader;
use siphon_wire::decode::Decoder;
use siphon_wire::link::LinkType;
use siphon_wire::write::{synth_udp_frame, PcapWriter};

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// Counts allocations made by the current thread.
struct Counting;

// SAFETY: forwards to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCATIONS.with(|c| c.get())
}

fn udp_frame() -> Vec<u8> {
    let src: SocketAddr = "10.0.0.1:5060".parse().unwrap();
    let dst: SocketAddr = "10.0.0.2:5062".parse().unwrap();
    synth_udp_frame(src, dst, &[0x80; 172])
}

#[test]
fn decoding_ethernet_ipv4_udp_allocates_nothing() {
    let frame = udp_frame();
    let mut d = Decoder::new();
    let before = allocations();
    let mut bytes = 0;
    for i in 0..10_000 {
        let p = d
            .decode_raw(i, LinkType::ETHERNET, &frame)
            .unwrap()
            .unwrap();
        bytes += p.payload.len();
    }
    assert_eq!(allocations() - before, 0);
    assert_eq!(bytes, 172 * 10_000);
}

#[test]
fn reading_frames_allocates_nothing_per_frame() {
    let frame = udp_frame();
    let mut w = PcapWriter::new(Vec::new(), LinkType::ETHERNET).unwrap();
    for i in 0..20_000 {
        w.write_frame(i, &frame, frame.len() as u32).unwrap();
    }
    let file = w.into_inner().unwrap();
    let mut r = CaptureReader::from_reader(Box::new(Cursor::new(file))).unwrap();
    let mut d = Decoder::new();
    let before = allocations();
    let mut n = 0;
    while let Some(f) = r.next_frame().unwrap() {
        assert!(d.decode(&f).unwrap().is_some());
        n += 1;
    }
    assert_eq!(n, 20_000);
    assert_eq!(allocations() - before, 0);
}

#[test]
fn reading_pcapng_frames_allocates_nothing_after_the_interface_descriptions() {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus/twoway_linux_cooked.pcapng");
    let mut r = CaptureReader::open(&path).unwrap();
    let mut d = Decoder::new();
    // The first call reads the section header and interface description (allocates).
    assert!(r.next_frame().unwrap().is_some());
    let before = allocations();
    let mut n = 1;
    while let Some(f) = r.next_frame().unwrap() {
        assert!(d.decode(&f).unwrap().is_some());
        n += 1;
    }
    assert_eq!(n, 141);
    assert_eq!(allocations() - before, 0);
}
