//! The stream consumer's CPU per 100-record batch, without network, on an HTTP client that
//! answers in process (`outbox_bench::cpu::Replay`), with the thread's CPU time as the measure
//! (`ThreadCpuTime`). Apart from `benches/handlers.rs` because it is built as the function is:
//! with the same global allocator. `make bench` reads the median back from
//! `target/criterion/`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use outbox_bench::cpu::{init_sink_tracing, runtime, ConsumerWorkload, ThreadCpuTime};

/// As `functions/stream-consumer/src/main.rs`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn stream_consumer(c: &mut Criterion<ThreadCpuTime>) {
    init_sink_tracing();
    let rt = runtime();
    let consumer = rt.block_on(ConsumerWorkload::new(100));
    let mut group = c.benchmark_group("stream_consumer");
    group.throughput(Throughput::Elements(100));
    group.bench_function("batch_100", |b| b.to_async(&rt).iter(|| consumer.batch()));
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = stream_consumer
}
criterion_main!(benches);
