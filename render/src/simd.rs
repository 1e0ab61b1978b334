//! The AVX2 step the resamplers share (`yuv.rs` for a picture's planes, `resample.rs` for RGBA
//! rows), through `pulp`'s safe run-time tokens (`#![forbid(unsafe_code)]` holds here).

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::__m256i;

/// Multiply-add 16 pairs of 16-bit `pairs` by `weights` into 8 sums, add `add`, shift right by
/// `SHIFT` and write the 8 results, saturated to bytes, to `out[..8]` (lane order: the first
/// four sums from the low 128 bits, then the high).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn weigh_pairs<const SHIFT: i32>(
    v3: pulp::x86::V3,
    pairs: __m256i,
    weights: __m256i,
    add: __m256i,
    out: &mut [u8],
) {
    let s = v3.avx2._mm256_madd_epi16(pairs, weights);
    let s = v3
        .avx2
        ._mm256_srai_epi32::<SHIFT>(v3.avx2._mm256_add_epi32(s, add));
    let s = v3.avx2._mm256_packus_epi32(s, s);
    let s: [u32; 8] = pulp::bytemuck::cast(v3.avx2._mm256_packus_epi16(s, s));
    out[..4].copy_from_slice(&s[0].to_le_bytes());
    out[4..8].copy_from_slice(&s[4].to_le_bytes());
}
