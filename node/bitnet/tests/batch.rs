//! Continuous batching in the ternary engine: [`Engine::forward_batch`] over several sequences,
//! joining and leaving between steps, gives every sequence exactly (bit for bit) the logits it
//! gets alone from [`Engine::forward`]; errors leave every sequence unchanged.
//!
//! The models are random (`ParamStore::init`) at the `tiny` shape, built in memory: batching is
//! about arithmetic order, not about what the weights have learned.

use candle_core::Device;
use magnet_bitnet::export::gguf_writer_parts;
use magnet_bitnet::gguf::{GgmlType, GgufFile};
use magnet_bitnet::infer::{Engine, Sequence};
use magnet_bitnet::kernel::Kernel;
use magnet_bitnet::{ModelConfig, ParamStore};

const VOCAB: usize = 320;

/// A random `tiny` model (d=256, L=2, h=4, kv=2, ff=512, context 64) as a parsed GGUF.
fn tiny_file(seed: u64, embed: GgmlType) -> GgufFile {
    let cfg = ModelConfig::preset("tiny", VOCAB).unwrap();
    let params = ParamStore::init(&cfg, seed, &Device::Cpu).unwrap();
    let bytes = gguf_writer_parts(&cfg, &params, None, embed)
        .unwrap()
        .to_bytes()
        .unwrap();
    GgufFile::parse(bytes).unwrap()
}

fn engine(g: &GgufFile, kernel: Kernel, threads: usize) -> Engine {
    let mut e = Engine::from_gguf(g, threads).unwrap();
    e.set_kernel(kernel).unwrap();
    e
}

/// Token `t` of request `r` (deterministic, spread over the vocabulary).
fn token(r: usize, t: usize) -> u32 {
    ((r * 7919 + t * 104_729 + 13) % VOCAB) as u32
}

/// The logits `forward` gives request `r` after each of its first `len` tokens, fed alone.
fn alone(g: &GgufFile, kernel: Kernel, r: usize, len: usize) -> Vec<Vec<f32>> {
    let mut e = engine(g, kernel, 1);
    (0..len).map(|t| e.forward(token(r, t)).unwrap()).collect()
}

/// Runs a schedule of batched steps: `steps[s]` lists the requests in step `s`'s batch (in that
/// order); a request not yet started is first prefilled with its prompt of `prompt(r)` tokens.
/// Checks every logit vector against the request fed alone.
fn check_schedule(
    g: &GgufFile,
    kernel: Kernel,
    threads: usize,
    requests: usize,
    prompt: impl Fn(usize) -> usize,
    steps: &[Vec<usize>],
) {
    let mut e = engine(g, kernel, threads);
    let lens: Vec<usize> = (0..requests)
        .map(|r| prompt(r) + steps.iter().filter(|s| s.contains(&r)).count())
        .collect();
    let want: Vec<Vec<Vec<f32>>> = (0..requests)
        .map(|r| alone(g, kernel, r, lens[r]))
        .collect();
    let mut seqs: Vec<Option<Sequence>> = (0..requests).map(|_| None).collect();
    for (s, batch) in steps.iter().enumerate() {
        for &r in batch {
            if seqs[r].is_none() {
                let mut seq = e.new_sequence();
                let p: Vec<u32> = (0..prompt(r)).map(|t| token(r, t)).collect();
                let logits = e.prefill(&mut seq, &p).unwrap();
                assert!(
                    logits == want[r][p.len() - 1],
                    "{kernel:?}/{threads}: prefill of request {r} differs from feeding it alone"
                );
                seqs[r] = Some(seq);
            }
        }
        let tokens: Vec<u32> = batch
            .iter()
            .map(|&r| token(r, seqs[r].as_ref().unwrap().position()))
            .collect();
        let positions: Vec<usize> = batch
            .iter()
            .map(|&r| seqs[r].as_ref().unwrap().position())
            .collect();
        // Borrow the batch's sequences mutably, in the batch's order.
        let mut taken: Vec<(usize, Sequence)> = batch
            .iter()
            .map(|&r| (r, seqs[r].take().unwrap()))
            .collect();
        let mut refs: Vec<&mut Sequence> = taken.iter_mut().map(|(_, s)| s).collect();
        let logits = e.forward_batch(&mut refs, &tokens).unwrap();
        assert_eq!(logits.len(), batch.len());
        for ((r, seq), (l, p)) in taken.into_iter().zip(logits.iter().zip(positions)) {
            assert_eq!(l.len(), VOCAB);
            assert_eq!(seq.position(), p + 1);
            assert!(
                *l == want[r][p],
                "{kernel:?}/{threads}: step {s}, request {r} at position {p} differs from feeding it alone"
            );
            seqs[r] = Some(seq);
        }
    }
}

#[test]
fn a_batch_of_1_3_or_8_sequences_gives_each_exactly_its_logits_alone_on_every_kernel() {
    let g = tiny_file(1, GgmlType::F32);
    for kernel in Kernel::available() {
        for threads in [1, 2] {
            for batch in [1usize, 3, 8] {
                let steps: Vec<Vec<usize>> = (0..5).map(|_| (0..batch).collect()).collect();
                check_schedule(&g, kernel, threads, batch, |r| 1 + (r * 5) % 9, &steps);
            }
        }
    }
}

#[test]
fn a_long_prompt_prefills_in_chunks_exactly_as_token_by_token() {
    // 50 tokens: more than one prefill chunk; a Q8_0 embedding/head this time.
    let g = tiny_file(2, GgmlType::Q8_0);
    for kernel in Kernel::available() {
        check_schedule(&g, kernel, 2, 2, |r| [50, 33][r], &[vec![0, 1], vec![1, 0]]);
    }
}

#[test]
fn sequences_join_and_leave_the_batch_between_steps_without_changing_their_outputs() {
    let g = tiny_file(3, GgmlType::F32);
    let steps = vec![
        vec![0, 1],
        vec![1],
        vec![2, 0, 1],
        vec![3, 2],
        vec![0, 3, 2, 1],
        vec![1, 3],
        vec![4],
        vec![0, 4, 2],
    ];
    for kernel in Kernel::available() {
        check_schedule(&g, kernel, 2, 5, |r| 2 + r * 3, &steps);
    }
}

#[test]
fn a_token_outside_the_vocabulary_in_one_slot_leaves_every_sequence_unchanged() {
    let g = tiny_file(4, GgmlType::F32);
    let mut e = engine(&g, Kernel::best(), 2);
    let mut seqs: Vec<Sequence> = (0..3)
        .map(|r| {
            let mut s = e.new_sequence();
            let p: Vec<u32> = (0..2 + r).map(|t| token(r, t)).collect();
            e.prefill(&mut s, &p).unwrap();
            s
        })
        .collect();
    let before = seqs.clone();
    let mut refs: Vec<&mut Sequence> = seqs.iter_mut().collect();
    let err = e
        .forward_batch(&mut refs, &[1, VOCAB as u32, 2])
        .unwrap_err()
        .to_string();
    assert!(err.contains("outside the vocabulary"), "{err}");
    assert!(
        e.forward_batch(&mut refs, &[1, 2]).is_err(),
        "one token short"
    );
    drop(refs);
    assert_eq!(seqs, before);
    // The next valid step gives what it gives without the failed ones.
    let mut again = before.clone();
    let mut a: Vec<&mut Sequence> = seqs.iter_mut().collect();
    let mut b: Vec<&mut Sequence> = again.iter_mut().collect();
    assert_eq!(
        e.forward_batch(&mut a, &[5, 6, 7]).unwrap(),
        e.forward_batch(&mut b, &[5, 6, 7]).unwrap()
    );
    // A bad prompt token, an empty prompt: the sequence is untouched.
    let mut s = before[0].clone();
    assert!(e.prefill(&mut s, &[3, 4, VOCAB as u32 + 9]).is_err());
    assert!(e.prefill(&mut s, &[]).is_err());
    assert_eq!(s, before[0]);
}

#[test]
fn a_full_context_fails_the_step_and_leaves_every_sequence_unchanged() {
    let g = tiny_file(5, GgmlType::F32);
    let mut e = engine(&g, Kernel::best(), 1);
    let ctx = e.config().max_seq_len;
    let mut full = e.new_sequence();
    let p: Vec<u32> = (0..ctx).map(|t| token(0, t)).collect();
    e.prefill(&mut full, &p).unwrap();
    assert_eq!(full.position(), ctx);
    let mut other = e.new_sequence();
    e.prefill(&mut other, &[1, 2, 3]).unwrap();
    let (full0, other0) = (full.clone(), other.clone());
    let err = e
        .forward_batch(&mut [&mut other, &mut full], &[4, 5])
        .unwrap_err()
        .to_string();
    assert!(err.contains("context is full"), "{err}");
    assert_eq!((&full, &other), (&full0, &other0));
    // A prompt longer than the room left fails whole, not part way.
    let room: Vec<u32> = (0..ctx - 2).map(|t| token(1, t)).collect();
    assert!(e.prefill(&mut other, &room).is_err());
    assert_eq!(other, other0);
    // The engine's own sequence: forward fails at the end of the context, as before.
    for t in 0..ctx {
        e.forward(token(2, t)).unwrap();
    }
    assert!(e.forward(1).is_err());
    assert_eq!(e.position(), ctx);
    // A sequence of another model is refused.
    let small = ModelConfig::preset("tiny", VOCAB).unwrap();
    let wider = ModelConfig {
        num_kv_heads: 4,
        ..small
    };
    let params = ParamStore::init(&wider, 6, &Device::Cpu).unwrap();
    let g2 = GgufFile::parse(
        gguf_writer_parts(&wider, &params, None, GgmlType::F32)
            .unwrap()
            .to_bytes()
            .unwrap(),
    )
    .unwrap();
    let foreign = Engine::from_gguf(&g2, 1).unwrap().new_sequence();
    let mut f = foreign.clone();
    assert!(e.forward_batch(&mut [&mut other, &mut f], &[1, 2]).is_err());
    assert_eq!((&f, &other), (&foreign, &other0));
}

#[test]
fn kv_bytes_per_token_times_position_is_a_sequences_kv_bytes() {
    let g = tiny_file(7, GgmlType::F32);
    let mut e = engine(&g, Kernel::best(), 1);
    let c = e.config().clone();
    assert_eq!(
        e.kv_bytes_per_token(),
        c.num_layers * 2 * c.kv_dim() * std::mem::size_of::<f32>()
    );
    let mut s = e.new_sequence();
    assert_eq!(s.kv_bytes(), 0);
    let p: Vec<u32> = (0..37).map(|t| token(3, t)).collect();
    e.prefill(&mut s, &p).unwrap();
    assert_eq!(s.kv_bytes(), e.kv_bytes_per_token() * s.position());
    let mut t = e.new_sequence();
    for k in 1..5u32 {
        e.forward_batch(&mut [&mut s, &mut t], &[k, k + 1]).unwrap();
        for q in [&s, &t] {
            assert_eq!(q.kv_bytes(), e.kv_bytes_per_token() * q.position());
        }
    }
    assert_eq!((s.position(), t.position()), (41, 4));
    s.reset();
    assert_eq!((s.position(), s.kv_bytes()), (0, 0));
}
