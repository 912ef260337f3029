//! BitLinear: the BitNet b1.58 projection, with a straight-through estimator (STE).
//!
//! Forward, for latent float32 weights `W` and input `X`:
//! - weights: `α = f16(mean|W|)`, `W̃ = RoundClamp(W/α, −1, 1)·α` — every entry is exactly
//!   `{−1, 0, +1}·α` ([`quantize_weights`]);
//! - activations, per token (last axis): `s = 127 / max|X|`, `X̃ = clamp(round(X·s), −128, 127)/s`
//!   ([`quantize_activations`]);
//! - `Y = X̃ · W̃ᵀ`.
//!
//! Backward uses the STE: each quantizer is written as `x + (q(x) − x).detach()`, so the gradient
//! with respect to the latent `W` (and to `X`) is the gradient with respect to `W̃` (and `X̃`).
//!
//! The scale `α` is rounded to f16 because that is what a GGUF `TQ2_0` block stores: the exported
//! file then computes exactly the training forward. With `quantized = false` the layer is a plain
//! float linear map (the "float twin").

use candle_core::{DType, Tensor, D};

use crate::error::Result;

/// Smallest scale denominators, as in the reference BitNet implementation.
pub const EPS: f64 = 1e-5;

/// The per-tensor weight scale `α = f16(max(mean|W|, 1e-5))`, as a scalar f32 tensor.
pub fn weight_scale(w: &Tensor) -> Result<Tensor> {
    let a = w.abs()?.mean_all()?.clamp(EPS, f64::MAX)?;
    Ok(a.to_dtype(DType::F16)?.to_dtype(DType::F32)?)
}

/// The ternary codes `RoundClamp(W/α, −1, 1)` (values in {−1, 0, 1}, f32) and `α`.
pub fn ternary_codes(w: &Tensor) -> Result<(Tensor, f32)> {
    let a = weight_scale(w)?;
    let codes = w.broadcast_div(&a)?.round()?.clamp(-1f32, 1f32)?;
    Ok((codes, a.to_scalar::<f32>()?))
}

/// Quantized weights `RoundClamp(W/α, −1, 1)·α` with the STE (gradient passes to `W`).
pub fn quantize_weights(w: &Tensor) -> Result<Tensor> {
    let a = weight_scale(w)?;
    let q = w
        .broadcast_div(&a)?
        .round()?
        .clamp(-1f32, 1f32)?
        .broadcast_mul(&a)?;
    Ok((w + (q - w)?.detach())?)
}

/// Per-token int8 absmax fake quantization with the STE.
pub fn quantize_activations(x: &Tensor) -> Result<Tensor> {
    let s = x.abs()?.max_keepdim(D::Minus1)?.clamp(EPS, f64::MAX)?;
    let s = (s.recip()? * 127.0)?;
    let q = x
        .broadcast_mul(&s)?
        .round()?
        .clamp(-128f32, 127f32)?
        .broadcast_div(&s)?;
    Ok((x + (q - x)?.detach())?)
}

/// A linear projection `y = x Wᵀ` without bias whose weight lives in an outside parameter store.
#[derive(Debug, Clone)]
pub struct BitLinear {
    weight: Tensor,
    quantized: bool,
}

impl BitLinear {
    /// Wraps a `(out, in)` weight; `quantized` selects BitLinear or the float twin.
    pub fn new(weight: Tensor, quantized: bool) -> Self {
        Self { weight, quantized }
    }

    /// The latent weight.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// Applies the layer to `x` of shape `(..., in)`.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (w, x) = if self.quantized {
            (quantize_weights(&self.weight)?, quantize_activations(x)?)
        } else {
            (self.weight.clone(), x.clone())
        };
        let dims = x.dims().to_vec();
        let last = dims.len() - 1;
        let rows: usize = dims[..last].iter().product();
        let y = x.reshape((rows, dims[last]))?.matmul(&w.t()?)?;
        let mut out = dims;
        out[last] = self.weight.dim(0)?;
        Ok(y.reshape(out)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn randn(n: usize, seed: u64) -> Vec<f32> {
        crate::init::normal_vec(n, 0.0, 0.5, seed)
    }

    #[test]
    fn quantized_weights_are_exactly_ternary_times_the_scale() {
        let w = Tensor::from_vec(randn(64 * 256, 1), (64, 256), &Device::Cpu).unwrap();
        let q = quantize_weights(&w).unwrap();
        let a = weight_scale(&w).unwrap().to_scalar::<f32>().unwrap();
        let mean_abs: f32 =
            randn(64 * 256, 1).iter().map(|v| v.abs()).sum::<f32>() / (64.0 * 256.0);
        assert!(
            (a - mean_abs).abs() <= mean_abs * 1e-3,
            "α={a} vs mean|W|={mean_abs}"
        );
        let mut seen = [0usize; 3];
        for v in q.flatten_all().unwrap().to_vec1::<f32>().unwrap() {
            let k = [-a, 0.0, a].iter().position(|t| *t == v);
            let k = k.unwrap_or_else(|| panic!("{v} is not in {{-1,0,1}}·{a}"));
            seen[k] += 1;
        }
        assert!(
            seen.iter().all(|c| *c > 0),
            "all three levels occur: {seen:?}"
        );
    }

    #[test]
    fn ste_gradients_reach_the_latent_weights() {
        let dev = Device::Cpu;
        let w = Var::from_vec(randn(8 * 256, 2), (8, 256), &dev).unwrap();
        let x = Tensor::from_vec(randn(3 * 256, 3), (3, 256), &dev).unwrap();
        let layer = BitLinear::new(w.as_tensor().clone(), true);
        let y = layer.forward(&x).unwrap();
        let loss = y.sqr().unwrap().sum_all().unwrap();
        let grads = loss.backward().unwrap();
        let g = grads
            .get(w.as_tensor())
            .expect("latent weight has a gradient");
        // STE: dL/dW = dL/dW̃ = (2·Y)ᵀ·X̃, so it equals that product exactly.
        let xq = quantize_activations(&x).unwrap();
        let want = (y * 2.0).unwrap().t().unwrap().matmul(&xq).unwrap();
        let diff = (g - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        let norm = g
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert!(norm > 0.0, "gradient is not zero");
        assert!(diff <= norm * 1e-5, "STE gradient differs by {diff}");
    }

    #[test]
    fn activations_are_quantized_per_token_to_int8_levels() {
        let x = Tensor::from_vec(randn(4 * 256, 4), (4, 256), &Device::Cpu).unwrap();
        let q = quantize_activations(&x).unwrap().to_vec2::<f32>().unwrap();
        for (row, orig) in q.iter().zip(x.to_vec2::<f32>().unwrap()) {
            let m = orig.iter().fold(0f32, |m, v| m.max(v.abs()));
            let s = 127.0 / m;
            for v in row {
                let level = v * s;
                assert!(
                    (level - level.round()).abs() < 1e-3,
                    "{level} is not an integer level"
                );
                assert!(level.abs() <= 127.001);
            }
        }
    }

    #[test]
    fn the_float_twin_is_a_plain_linear_map() {
        let dev = Device::Cpu;
        let w = Tensor::from_vec(randn(4 * 256, 5), (4, 256), &dev).unwrap();
        let x = Tensor::from_vec(randn(2 * 256, 6), (2, 256), &dev).unwrap();
        let y = BitLinear::new(w.clone(), false).forward(&x).unwrap();
        let want = x.matmul(&w.t().unwrap()).unwrap();
        let d = (y - want)
            .unwrap()
            .abs()
            .unwrap()
            .max_all()
            .unwrap()
            .to_scalar::<f32>()
            .unwrap();
        assert_eq!(d, 0.0);
    }
}
