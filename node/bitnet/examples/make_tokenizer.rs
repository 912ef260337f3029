//! Trains a byte-level BPE tokenizer for the benchmarks: `make_tokenizer CORPUS VOCAB OUT.json`.

use magnet_bitnet::tokenizer::Tokenizer;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let [corpus, vocab, out] = a.as_slice() else {
        return Err("usage: make_tokenizer CORPUS VOCAB OUT.json".into());
    };
    let t = Tokenizer::train(&[std::path::Path::new(corpus)], vocab.parse()?)?;
    t.save(std::path::Path::new(out))?;
    eprintln!("{out}: {} tokens", t.vocab_size());
    Ok(())
}
