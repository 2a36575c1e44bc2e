//! Handler CPU per request, without network: the order-writer's `POST /orders` on an HTTP client
//! that answers in process (`outbox_bench::cpu::Replay`). The stream consumer's batch is
//! `benches/consumer.rs`, built with that function's allocator.
//!
//! A current-thread runtime, as in the functions, and the thread's CPU time as the measure
//! (`ThreadCpuTime`): other work on a shared machine does not inflate it. `make bench` reads the
//! medians back from `target/criterion/` into its table.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use outbox_bench::cpu::{init_sink_tracing, runtime, ThreadCpuTime, WriterWorkload};

fn order_writer(c: &mut Criterion<ThreadCpuTime>) {
    init_sink_tracing();
    let rt = runtime();
    let writer = rt.block_on(WriterWorkload::new());
    let mut group = c.benchmark_group("order_writer");
    group.throughput(Throughput::Elements(1));
    group.bench_function("handler", |b| b.to_async(&rt).iter(|| writer.handler()));
    group.bench_function("invocation", |b| {
        b.to_async(&rt).iter(|| writer.invocation())
    });
    group.bench_function("store_write", |b| {
        b.to_async(&rt).iter(|| writer.store_write())
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(ThreadCpuTime);
    targets = order_writer
}
criterion_main!(benches);
