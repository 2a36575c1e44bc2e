//! The stream consumer's CPU per 100-record batch, without network, on an HTTP client that
//! answers in process (`outbox_bench::cpu::Replay`), with the thread's CPU time as the measure
//! (`ThreadCpuTime`). Apart from `benches/handlers.rs` because it is built as the function is:
//! with the same global allocator. `make bench` reads the median back from
//! `target/criterion/`.

use outbox_bench::cpu::{bench_main, ConsumerWorkload};

/// As `functions/stream-consumer/src/main.rs`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    bench_main("stream_consumer", 100, |group, rt| {
        let consumer = rt.block_on(ConsumerWorkload::new(100));
        group.bench_function("batch_100", |b| b.to_async(rt).iter(|| consumer.batch()));
    });
}
