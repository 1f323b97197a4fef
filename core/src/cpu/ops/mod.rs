//! TEMPORARY compile stub: replaced by the real kernels from branch wt-ops.
#![allow(unused_variables, clippy::too_many_arguments, missing_docs)]
pub trait Scalar: Copy + Send + Sync + 'static {}
impl Scalar for f32 {}
impl Scalar for f64 {}
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeom {
    pub batch: usize,
    pub cin: usize,
    pub cout: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
}
pub fn conv2d_forward<T: Scalar>(g: &Conv2dGeom, x: &[T], w: &[T], b: Option<&[T]>, y: &mut [T]) {
    unimplemented!()
}
pub fn conv2d_backward_input<T: Scalar>(
    g: &Conv2dGeom,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
    acc: bool,
) {
    unimplemented!()
}
pub fn conv2d_backward_params<T: Scalar>(
    g: &Conv2dGeom,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    db: Option<&mut [T]>,
) {
    unimplemented!()
}
pub fn avg_pool2_forward<T: Scalar>(b: usize, c: usize, h: usize, w: usize, x: &[T], y: &mut [T]) {
    unimplemented!()
}
pub fn avg_pool2_backward<T: Scalar>(
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    dy: &[T],
    dx: &mut [T],
    acc: bool,
) {
    unimplemented!()
}
pub fn global_avg_pool_forward<T: Scalar>(b: usize, c: usize, hw: usize, x: &[T], y: &mut [T]) {
    unimplemented!()
}
pub fn global_avg_pool_backward<T: Scalar>(
    b: usize,
    c: usize,
    hw: usize,
    dy: &[T],
    dx: &mut [T],
    acc: bool,
) {
    unimplemented!()
}
pub fn linear_forward<T: Scalar>(
    batch: usize,
    din: usize,
    dout: usize,
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    y: &mut [T],
) {
    unimplemented!()
}
pub fn linear_backward_input<T: Scalar>(
    batch: usize,
    din: usize,
    dout: usize,
    dy: &[T],
    w: &[T],
    dx: &mut [T],
    acc: bool,
) {
    unimplemented!()
}
pub fn linear_backward_params<T: Scalar>(
    batch: usize,
    din: usize,
    dout: usize,
    x: &[T],
    dy: &[T],
    dw: &mut [T],
    db: Option<&mut [T]>,
) {
    unimplemented!()
}
pub fn relu_forward<T: Scalar>(x: &[T], y: &mut [T]) {
    unimplemented!()
}
pub fn relu_backward<T: Scalar>(x: &[T], dy: &[T], dx: &mut [T], acc: bool) {
    unimplemented!()
}
pub fn leaky_relu_forward<T: Scalar>(slope: T, x: &[T], y: &mut [T]) {
    unimplemented!()
}
pub fn leaky_relu_backward<T: Scalar>(slope: T, x: &[T], dy: &[T], dx: &mut [T], acc: bool) {
    unimplemented!()
}
pub fn tanh_forward<T: Scalar>(x: &[T], y: &mut [T]) {
    unimplemented!()
}
pub fn tanh_backward<T: Scalar>(y: &[T], dy: &[T], dx: &mut [T], acc: bool) {
    unimplemented!()
}
pub fn bn_inference_forward<T: Scalar>(
    b: usize,
    c: usize,
    hw: usize,
    eps: T,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    mean: &[T],
    var: &[T],
    y: &mut [T],
) {
    unimplemented!()
}
pub fn bn_inference_backward<T: Scalar>(
    b: usize,
    c: usize,
    hw: usize,
    eps: T,
    x: &[T],
    dy: &[T],
    gamma: &[T],
    mean: &[T],
    var: &[T],
    dx: Option<&mut [T]>,
    acc: bool,
    dgamma: Option<&mut [T]>,
    dbeta: Option<&mut [T]>,
) {
    unimplemented!()
}
pub fn bn_train_forward<T: Scalar>(
    b: usize,
    c: usize,
    hw: usize,
    eps: T,
    x: &[T],
    gamma: &[T],
    beta: &[T],
    y: &mut [T],
    batch_mean: &mut [T],
    batch_var_biased: &mut [T],
) {
    unimplemented!()
}
pub fn bn_train_backward<T: Scalar>(
    b: usize,
    c: usize,
    hw: usize,
    eps: T,
    x: &[T],
    dy: &[T],
    gamma: &[T],
    batch_mean: &[T],
    batch_var_biased: &[T],
    dx: &mut [T],
    acc: bool,
    dgamma: Option<&mut [T]>,
    dbeta: Option<&mut [T]>,
) {
    unimplemented!()
}
pub fn upsample_bilinear2_forward<T: Scalar>(
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    x: &[T],
    y: &mut [T],
) {
    unimplemented!()
}
pub fn upsample_bilinear2_backward<T: Scalar>(
    b: usize,
    c: usize,
    h: usize,
    w: usize,
    dy: &[T],
    dx: &mut [T],
    acc: bool,
) {
    unimplemented!()
}
