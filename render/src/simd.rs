//! AVX2 kernels: the step the resamplers share (`yuv.rs` for a picture's planes, `resample.rs`
//! for RGBA rows), RGBA → yuv420p conversion (`paint.rs`), the layers' "over" (`frame.rs`) and
//! the luma of layers blended over a base picture's planes (`yuv.rs`),
//! through `pulp`'s safe run-time tokens (`#![forbid(unsafe_code)]` holds here). Each gives
//! exactly the bytes of the scalar loop beside its caller, which other CPUs run.

#[cfg(target_arch = "x86_64")]
use std::arch::x86_64::__m256i;

/// Runs `body` with AVX2: in the body of pulp's `vectorize`, a function compiled for it, by way
/// of a struct whose `call` is always inlined there. A closure would be a function of its own,
/// compiled without AVX2: when the optimiser does not inline it, every intrinsic in it becomes
/// a call (measured: conversion 25× slower). The body sees only the values passed in, written
/// `name: Type = value` (`'a` is the lifetime of borrowed ones). Closures inside the body are
/// functions of their own too, so helpers there are `#[inline(always)]` fns instead.
#[cfg(target_arch = "x86_64")]
macro_rules! avx2 {
    ($v3:expr, ($($name:ident: $ty:ty = $value:expr),* $(,)?) -> $out:ty $body:block) => {{
        struct Op<'a> {
            $($name: $ty,)*
            _borrows: std::marker::PhantomData<&'a ()>,
        }
        impl pulp::NullaryFnOnce for Op<'_> {
            type Output = $out;
            #[inline(always)]
            fn call(self) -> $out {
                let Op { $($name,)* .. } = self;
                $body
            }
        }
        $v3.vectorize(Op { $($name: $value,)* _borrows: std::marker::PhantomData })
    }};
}
#[cfg(target_arch = "x86_64")]
pub(crate) use avx2;

/// For the exactness tests: whether this CPU has the AVX2 path (saying so when it does not,
/// since the test then has nothing to compare).
#[cfg(test)]
pub(crate) fn avx2_here() -> bool {
    #[cfg(target_arch = "x86_64")]
    if pulp::x86::V3::try_new().is_some() {
        return true;
    }
    eprintln!("no AVX2 here: only the scalar path exists");
    false
}

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
    store_bytes(v3, s, out);
}

/// Narrow 8 sums to bytes, saturated, into `out[..8]` (lane order: the first four from the low
/// 128 bits, then the high).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn store_bytes(v3: pulp::x86::V3, s: __m256i, out: &mut [u8]) {
    let s = v3.avx2._mm256_packus_epi32(s, s);
    let s: [u32; 8] = pulp::bytemuck::cast(v3.avx2._mm256_packus_epi16(s, s));
    out[..4].copy_from_slice(&s[0].to_le_bytes());
    out[4..8].copy_from_slice(&s[4].to_le_bytes());
}

/// Luma of whole groups of 8 RGBA pixels of `src` into `out`:
/// `(YR·r + YG·g + YB·b + add[k]) >> 16` for the group's k-th pixel, exactly as
/// [`crate::paint::rgba_to_yuv420p_rect`]'s scalar loop. Returns how many pixels it wrote (a multiple of 8; the rest is the caller's).
///
/// Each pixel is spread to the 16-bit lanes `[r g g b]` and multiply-added with
/// `[YR YG/2 YG−YG/2 YB]` (YG alone does not fit a signed 16-bit weight), then the pixel's two
/// sums are added: the same integer as the scalar formula.
#[cfg(target_arch = "x86_64")]
pub(crate) fn luma_v3(v3: pulp::x86::V3, src: &[u8], add: &[i32; 8], out: &mut [u8]) -> usize {
    use crate::paint::{YB, YG, YR};
    use pulp::bytemuck::cast;
    const Z: u8 = 0x80; // pshufb: a zero byte
    const A: [u8; 16] = [0, Z, 1, Z, 1, Z, 2, Z, 4, Z, 5, Z, 5, Z, 6, Z];
    const B: [u8; 16] = [8, Z, 9, Z, 9, Z, 10, Z, 12, Z, 13, Z, 13, Z, 14, Z];
    let w = [YR as i16, (YG / 2) as i16, (YG - YG / 2) as i16, YB as i16];
    let weights: __m256i = cast([w, w, w, w]);
    let (a, b): (__m256i, __m256i) = (cast([A, A]), cast([B, B]));
    let add: __m256i = cast(*add);
    avx2!(v3, (v3: pulp::x86::V3 = v3, src: &'a [u8] = src, out: &'a mut [u8] = out,
               weights: __m256i = weights, a: __m256i = a, b: __m256i = b, add: __m256i = add)
            -> usize {
        let groups = out.chunks_exact_mut(8).zip(src.chunks_exact(32));
        let mut n = 0;
        for (o, p) in groups {
            let p: [u8; 32] = p.try_into().expect("8 pixels");
            let p: __m256i = cast(p);
            let x = &v3.avx2;
            // low lane: pixels 0–3, high lane: 4–7; A takes each lane's first two, B the others
            let ma = x._mm256_madd_epi16(x._mm256_shuffle_epi8(p, a), weights);
            let mb = x._mm256_madd_epi16(x._mm256_shuffle_epi8(p, b), weights);
            let s = x._mm256_add_epi32(x._mm256_hadd_epi32(ma, mb), add);
            store_bytes(v3, x._mm256_srai_epi32::<16>(s), o);
            n += 8;
        }
        n
    })
}

/// Premultiplied RGBA `src` blended over whole groups of 8 luma samples of `dst`:
/// `(YR·r + YG·g + YB·b + Y16·a + (255 − a)·d·K255 + add[k]) >> 16` for the group's k-th pixel,
/// `d` left as it is where `a` is 0, exactly as [`crate::yuv`]'s scalar row. Returns how many
/// samples it wrote (a multiple of 8; the rest is the caller's). Each pixel is one 32-bit lane.
#[cfg(target_arch = "x86_64")]
pub(crate) fn blend_luma_v3(
    v3: pulp::x86::V3,
    src: &[u8],
    add: &[i32; 8],
    dst: &mut [u8],
) -> usize {
    use crate::paint::{YB, YG, YR};
    use crate::yuv::{K255, Y16};
    use pulp::bytemuck::cast;
    let add: __m256i = cast(*add);
    let k = |c: i32| -> __m256i { cast([c; 8]) };
    // [0xFF, 255, YR, YG, YB, Y16, K255, 0], each in every lane
    let consts = [k(0xFF), k(255), k(YR), k(YG), k(YB), k(Y16), k(K255), k(0)];
    avx2!(v3, (v3: pulp::x86::V3 = v3, src: &'a [u8] = src, dst: &'a mut [u8] = dst,
               add: __m256i = add, consts: [__m256i; 8] = consts) -> usize {
        let x = &v3.avx2;
        let [byte, full, yr, yg, yb, y16, k255, zero] = consts;
        let mut n = 0;
        for (d, p) in dst.chunks_exact_mut(8).zip(src.chunks_exact(32)) {
            let p: [u8; 32] = p.try_into().expect("8 pixels");
            let p: __m256i = cast(p);
            let r = x._mm256_and_si256(p, byte);
            let g = x._mm256_and_si256(x._mm256_srli_epi32::<8>(p), byte);
            let b = x._mm256_and_si256(x._mm256_srli_epi32::<16>(p), byte);
            let a = x._mm256_srli_epi32::<24>(p);
            let lo: [u8; 8] = (*d).try_into().expect("8 samples");
            let old = x._mm256_cvtepu8_epi32(cast([lo, [0u8; 8]]));
            let mut v = x._mm256_add_epi32(x._mm256_mullo_epi32(r, yr), x._mm256_mullo_epi32(g, yg));
            v = x._mm256_add_epi32(v, x._mm256_mullo_epi32(b, yb));
            v = x._mm256_add_epi32(v, x._mm256_mullo_epi32(a, y16));
            let keep = x._mm256_mullo_epi32(x._mm256_sub_epi32(full, a), old);
            v = x._mm256_add_epi32(v, x._mm256_mullo_epi32(keep, k255));
            let v = x._mm256_srai_epi32::<16>(x._mm256_add_epi32(v, add));
            let clear = x._mm256_cmpeq_epi32(a, zero);
            store_bytes(v3, x._mm256_blendv_epi8(v, old, clear), d);
            n += 8;
        }
        n
    })
}

/// Cb and Cr of whole groups of 4 2×2 blocks (8 RGBA pixels of rows `r0` and `r1`) into `u` and
/// `v`, exactly as [`crate::paint::chroma_of_sums`] of the blocks' sums. Returns how many
/// blocks it wrote (a multiple of 4; the rest is the caller's).
#[cfg(target_arch = "x86_64")]
pub(crate) fn chroma_v3(
    v3: pulp::x86::V3,
    r0: &[u8],
    r1: &[u8],
    u: &mut [u8],
    v: &mut [u8],
) -> usize {
    use crate::paint::{CBB, CBG, CBR, CRB, CRG, CRR, FP};
    use pulp::bytemuck::cast;
    // in each lane (4 pixels, 2 blocks): [r0 r1 g0 g1 b0 b1 a0 a1 | r2 r3 …], so that adding
    // byte pairs gives each block's row sums [r g b a]
    const PAIR: [u8; 16] = [0, 4, 1, 5, 2, 6, 3, 7, 8, 12, 9, 13, 10, 14, 11, 15];
    let pair: __m256i = cast([PAIR, PAIR]);
    let ones: __m256i = cast([1u8; 32]);
    let cb = [CBR as i16, CBG as i16, CBB as i16, 0];
    let cr = [CRR as i16, CRG as i16, CRB as i16, 0];
    let (cb, cr): (__m256i, __m256i) = (cast([cb, cb, cb, cb]), cast([cr, cr, cr, cr]));
    let add: __m256i = cast([128 * 4 * FP + 2 * FP; 8]);
    avx2!(v3, (v3: pulp::x86::V3 = v3, r0: &'a [u8] = r0, r1: &'a [u8] = r1,
               u: &'a mut [u8] = u, v: &'a mut [u8] = v, pair: __m256i = pair,
               ones: __m256i = ones, cb: __m256i = cb, cr: __m256i = cr, add: __m256i = add)
            -> usize {
        let x = &v3.avx2;
        let groups = u
            .chunks_exact_mut(4)
            .zip(v.chunks_exact_mut(4))
            .zip(r0.chunks_exact(32).zip(r1.chunks_exact(32)));
        let mut n = 0;
        for ((u, v), (p0, p1)) in groups {
            // 16-bit [sr sg sb sa] per block: blocks 0, 1 low, 2, 3 high
            let s = x._mm256_add_epi16(pair_sums(v3, p0, pair, ones), pair_sums(v3, p1, pair, ones));
            let (b, r) = (x._mm256_madd_epi16(s, cb), x._mm256_madd_epi16(s, cr));
            // per lane [cb cb cr cr] of its two blocks
            let s = x._mm256_add_epi32(x._mm256_hadd_epi32(b, r), add);
            let mut out = [0u8; 8];
            store_bytes(v3, x._mm256_srai_epi32::<18>(s), &mut out);
            u.copy_from_slice(&[out[0], out[1], out[4], out[5]]);
            v.copy_from_slice(&[out[2], out[3], out[6], out[7]]);
            n += 4;
        }
        n
    })
}

/// 8 RGBA pixels' bytes shuffled by `pair` and added in adjacent pairs, as 16-bit lanes.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn pair_sums(v3: pulp::x86::V3, p: &[u8], pair: __m256i, ones: __m256i) -> __m256i {
    let p: [u8; 32] = p.try_into().expect("8 pixels");
    let x = &v3.avx2;
    x._mm256_maddubs_epi16(x._mm256_shuffle_epi8(pulp::bytemuck::cast(p), pair), ones)
}

/// [`crate::frame`]'s "over" of 8 premultiplied RGBA pixels `s` onto `d`, scaled by the opacity
/// `op` (0..=256): per channel `s' = (s × op + 128) >> 8` (when `op` < 256), then
/// `d = min(255, s' + div255(d × (255 − s'ₐ)))`, all in 16-bit lanes where every step fits
/// unsigned 16 bits: the same bytes as the scalar `blend`.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) fn over8_v3(v3: pulp::x86::V3, d: &mut [u8; 32], s: &[u8; 32], op: u32) {
    use pulp::bytemuck::cast;
    // each pixel's alpha (16-bit lane 3 of 4) to its four lanes
    const ALPHA: [u8; 16] = [6, 7, 6, 7, 6, 7, 6, 7, 14, 15, 14, 15, 14, 15, 14, 15];
    let x = &v3.avx2;
    let alpha: __m256i = cast([ALPHA, ALPHA]);
    let c255: __m256i = cast([255u16; 16]);
    let c128: __m256i = cast([128u16; 16]);
    let opv: __m256i = cast([op.min(256) as u16; 16]);
    let ([s0, s1], [d0, d1]) = (widen(v3, s), widen(v3, d));
    let k = [alpha, c255, c128, opv];
    // packing works per 128-bit lane: pixels [0 1 4 5 | 2 3 6 7], put back in order
    let r = x._mm256_packus_epi16(over4(v3, s0, d0, op, k), over4(v3, s1, d1, op, k));
    *d = cast(x._mm256_permute4x64_epi64::<0b11_01_10_00>(r));
}

/// 32 bytes as two registers of 16-bit lanes (bytes 0–15, then 16–31).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn widen(v3: pulp::x86::V3, p: &[u8; 32]) -> [__m256i; 2] {
    let [a, b]: [std::arch::x86_64::__m128i; 2] = pulp::bytemuck::cast(*p);
    [
        v3.avx2._mm256_cvtepu8_epi16(a),
        v3.avx2._mm256_cvtepu8_epi16(b),
    ]
}

/// [`over8_v3`] on 4 pixels in 16-bit lanes; `k` holds its constants.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn over4(v3: pulp::x86::V3, s: __m256i, d: __m256i, op: u32, k: [__m256i; 4]) -> __m256i {
    let x = &v3.avx2;
    let [alpha, c255, c128, opv] = k;
    let s = if op < 256 {
        x._mm256_srli_epi16::<8>(x._mm256_add_epi16(x._mm256_mullo_epi16(s, opv), c128))
    } else {
        s
    };
    let inv = x._mm256_sub_epi16(c255, x._mm256_shuffle_epi8(s, alpha));
    let t = x._mm256_add_epi16(x._mm256_mullo_epi16(d, inv), c128);
    let q = x._mm256_srli_epi16::<8>(x._mm256_add_epi16(t, x._mm256_srli_epi16::<8>(t)));
    x._mm256_add_epi16(s, q)
}
