//! With the `tch` feature, gives this crate's test binaries the rpath to
//! libtorch (see `gpu/link_args.rs`). Without the feature it does nothing.

include!("../gpu/link_args.rs");

fn main() {
    emit_tch_link_args();
}
