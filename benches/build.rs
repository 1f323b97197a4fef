//! With the `tch` feature, gives the benchmark binary the rpath to libtorch
//! (see `gpu/link_args.rs`).

include!("../gpu/link_args.rs");

fn main() {
    emit_tch_link_args();
}
