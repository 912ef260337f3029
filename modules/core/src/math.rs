//! Checked integer arithmetic for money: `a·b/c` with a 256-bit intermediate, and
//! parts-per-million rates. Nothing here wraps or rounds up: every function floors and
//! returns `None` (or an error upstream) when the exact result does not fit.

/// One whole in parts per million: rates are `u64` ppm, `1_000_000` = 1.0.
pub const PPM: u64 = 1_000_000;

/// Full 128×128 → 256-bit product as (high, low).
fn mul_wide(a: u128, b: u128) -> (u128, u128) {
    let mask = u64::MAX as u128;
    let (a_hi, a_lo) = (a >> 64, a & mask);
    let (b_hi, b_lo) = (b >> 64, b & mask);
    let ll = a_lo * b_lo;
    let lh = a_lo * b_hi;
    let hl = a_hi * b_lo;
    let hh = a_hi * b_hi;
    let mid = (ll >> 64) + (lh & mask) + (hl & mask);
    let lo = (ll & mask) | ((mid & mask) << 64);
    let hi = hh + (lh >> 64) + (hl >> 64) + (mid >> 64);
    (hi, lo)
}

/// `floor(a·b / c)`, exact for all inputs; `None` if `c == 0` or the quotient exceeds `u128`.
pub fn mul_div(a: u128, b: u128, c: u128) -> Option<u128> {
    if c == 0 {
        return None;
    }
    let (hi, lo) = mul_wide(a, b);
    if hi == 0 {
        return Some(lo / c);
    }
    if hi >= c {
        return None; // quotient ≥ 2^128
    }
    // Restoring long division of the 256-bit (hi, lo) by c, one bit at a time.
    let mut rem = hi;
    let mut q: u128 = 0;
    for i in (0..128).rev() {
        let carry = rem >> 127;
        rem = (rem << 1) | ((lo >> i) & 1);
        q <<= 1;
        if carry == 1 || rem >= c {
            rem = rem.wrapping_sub(c);
            q |= 1;
        }
    }
    Some(q)
}

/// `floor(amount · ppm / 10^6)`; `None` if `ppm > 10^6` would make it overflow.
pub fn ppm_of(amount: u128, ppm: u64) -> Option<u128> {
    mul_div(amount, ppm as u128, PPM as u128)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn max_values_divide_exactly_or_report_overflow() {
        assert_eq!(mul_div(u128::MAX, u128::MAX, u128::MAX), Some(u128::MAX));
        assert_eq!(mul_div(u128::MAX, 2, 1), None);
        assert_eq!(mul_div(u128::MAX, u128::MAX, u128::MAX - 1), None);
        assert_eq!(mul_div(u128::MAX, 3, 4), Some(u128::MAX / 4 * 3 + 2));
        assert_eq!(mul_div(5, 5, 0), None);
        assert_eq!(ppm_of(u128::MAX, 1_000_000), Some(u128::MAX));
    }

    proptest! {
        #[test]
        fn mul_div_matches_u128_when_it_fits(a in any::<u64>(), b in any::<u64>(), c in 1u128..) {
            prop_assert_eq!(mul_div(a as u128, b as u128, c), Some((a as u128 * b as u128) / c));
        }

        #[test]
        fn mul_div_is_exact_for_large_values(q in any::<u64>(), c in (1u128 << 64).., r_frac in any::<u64>()) {
            // a·b = q·c + r with r < c; pick a = c, b = q, then add r via a+1 trick is messy: check
            // (c·q + r)/c == q using b = 1.
            let r = (r_frac as u128) % c;
            if let Some(a) = c.checked_mul(q as u128).and_then(|x| x.checked_add(r)) {
                prop_assert_eq!(mul_div(a, 1, c), Some(q as u128));
            }
            prop_assert_eq!(mul_div(c, q as u128, c), Some(q as u128));
        }
    }
}
