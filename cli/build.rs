//! With the `tch` feature, gives the `hatebm` binary and its tests the rpath to
//! libtorch (see `gpu/link_args.rs`). Without the feature it does nothing.

include!("../gpu/link_args.rs");

fn main() {
    emit_tch_link_args();
}
