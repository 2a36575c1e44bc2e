//! Handler CPU per request, without network: the order-writer's `POST /orders` on an HTTP client
//! that answers in process (`outbox_bench::cpu::Replay`). The stream consumer's batch is
//! `benches/consumer.rs`, built with that function's allocator.
//!
//! A current-thread runtime, as in the functions, and the thread's CPU time as the measure
//! (`ThreadCpuTime`): other work on a shared machine does not inflate it. `make bench` reads the
//! medians back from `target/criterion/` into its table.

use outbox_bench::cpu::{bench_main, WriterWorkload};

fn main() {
    bench_main("order_writer", 1, |group, rt| {
        let writer = rt.block_on(WriterWorkload::new());
        group.bench_function("handler", |b| b.to_async(rt).iter(|| writer.handler()));
        group.bench_function("invocation", |b| {
            b.to_async(rt).iter(|| writer.invocation())
        });
        group.bench_function("store_write", |b| {
            b.to_async(rt).iter(|| writer.store_write())
        });
    });
}
