//! `magnet-worker pay`: the client side of x402 — send a request to a paid server, pay the
//! price it asks (within your limit) with a signed `MsgPayForInference`, print the answer.

use std::io::{Read, Write};
use std::path::PathBuf;

use anyhow::{bail, Context};
use clap::Args;
use magnet_client::x402::{self, PayLimits, PaymentRequired, SettlementResponse};
use magnet_client::{ChainClient, Keyring, KeyringBackend};

/// `pay` arguments.
#[derive(Args, Debug)]
#[command(after_help = "\
Example (a chat request to a server started with `magnet-worker serve --price-per-token 2`):
  magnet-worker pay http://127.0.0.1:8080/v1/chat/completions --from alice --max-amount 5000 \\
    -d '{\"model\":\"model\",\"messages\":[{\"role\":\"user\",\"content\":\"Who begat Enos?\"}],\"max_tokens\":32}'

The server answers 402 with its price; if it is within --max-amount, the request is sent
again with a payment signed by --from, which the server settles on chain before answering.
The answer goes to stdout, the settlement (tx hash, height) to stderr.
A worker's operator key pays with: --home WORKER_HOME/keyring --from operator")]
pub struct PayArgs {
    /// The endpoint, e.g. http://127.0.0.1:8080/v1/completions.
    url: String,
    /// The JSON request body; `@FILE` reads a file, `-` reads stdin.
    #[arg(long, short = 'd', value_name = "JSON")]
    data: String,
    /// Name of the paying key.
    #[arg(long, value_name = "NAME")]
    from: String,
    /// Keyring home (default ~/.magnetd, as `magnetd keys`).
    #[arg(long, value_name = "DIR")]
    home: Option<PathBuf>,
    /// Keyring backend: `test` or `file` (passphrase from MAGNET_KEYRING_PASSPHRASE or stdin).
    #[arg(long, default_value = "test")]
    keyring_backend: KeyringBackend,
    /// The chain node to read your account from (the payment is bound to its chain id).
    #[arg(long, default_value = "http://127.0.0.1:26657", value_name = "URL")]
    node: String,
    /// The most umag you agree to pay for this request.
    #[arg(long, value_name = "UMAG")]
    max_amount: u128,
    /// Refuse to pay unless the payment goes to this job's model.
    #[arg(long, value_name = "N")]
    job: Option<u64>,
    /// Gas limit of the payment tx.
    #[arg(long, default_value_t = 200_000)]
    gas: u64,
    /// Gas price in umag per gas.
    #[arg(long, default_value = magnet_client::tx::DEFAULT_GAS_PRICE)]
    gas_price: String,
    /// Also write the settlement (JSON) here.
    #[arg(long, value_name = "FILE")]
    receipt: Option<PathBuf>,
}

fn body(data: &str) -> anyhow::Result<String> {
    Ok(if data == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s
    } else if let Some(f) = data.strip_prefix('@') {
        std::fs::read_to_string(f).with_context(|| format!("reading {f}"))?
    } else {
        data.to_string()
    })
}

/// Posts `body`, with `payment` as the `PAYMENT-SIGNATURE` header if given.
fn post(url: &str, body: &str, payment: Option<&str>) -> anyhow::Result<ureq::Response> {
    let mut req = ureq::post(url).set("content-type", "application/json");
    if let Some(p) = payment {
        req = req.set(x402::HEADER_PAYMENT_SIGNATURE, p);
    }
    match req.send_string(body) {
        Ok(r) => Ok(r),
        Err(ureq::Error::Status(_, r)) => Ok(r),
        Err(e) => Err(e).with_context(|| format!("sending the request to {url}")),
    }
}

fn print_body(r: ureq::Response) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    std::io::copy(&mut r.into_reader(), &mut out)?;
    writeln!(out)?;
    Ok(())
}

/// Runs `pay`.
pub fn run(a: PayArgs) -> anyhow::Result<()> {
    let body = body(&a.data)?;
    let first = post(&a.url, &body, None)?;
    match first.status() {
        200 => {
            eprintln!("the server answered without asking for payment");
            return print_body(first);
        }
        402 => {}
        s => bail!("the server answered {s}: {}", first.into_string()?),
    }
    let required: PaymentRequired = match first.header(x402::HEADER_PAYMENT_REQUIRED) {
        Some(h) => x402::decode_header("the PAYMENT-REQUIRED header", h)?,
        None => serde_json::from_str(&first.into_string()?)
            .context("the 402 answer has no PAYMENT-REQUIRED header and no x402 body")?,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let home = a.home.clone().unwrap_or_else(|| {
        std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_default()
            .join(".magnetd")
    });
    let key = Keyring::open(&home, a.keyring_backend)
        .get(&a.from)
        .with_context(|| format!("loading key {:?} from {}", a.from, home.display()))?;
    let chain = ChainClient::new(&a.node)?;
    let (chain_id, acct) = rt.block_on(async {
        let st = chain.status().await?;
        let acct = chain.account(&key.address()).await?;
        anyhow::Ok((st.node_info.network.to_string(), acct))
    })?;
    let acct = acct.with_context(|| {
        format!(
            "{} has no account on {chain_id}; fund it first (magnetd tx bank send …)",
            key.address()
        )
    })?;
    let limits = PayLimits {
        chain_id: chain_id.clone(),
        max_amount: a.max_amount,
        model: a.job,
    };
    let (req, amount) = x402::choose(&required, &limits)?;
    eprintln!(
        "paying {amount} umag to {} for job {}'s model ({} prompt + {} max tokens at {} umag)",
        req.pay_to,
        req.extra.model,
        req.extra.prompt_tokens,
        req.extra.max_tokens,
        req.extra.price_per_token
    );
    let fee = magnet_client::tx::FeeSpec::at_price(a.gas, &a.gas_price)?;
    let signer = magnet_client::tx::SignerData {
        chain_id,
        account_number: acct.account_number,
        sequence: acct.sequence,
    };
    let payload = x402::pay_exact(
        &key,
        req,
        amount,
        Some(required.resource.clone()),
        &fee,
        &signer,
    )?;
    let paid = post(&a.url, &body, Some(&x402::encode_header(&payload)))?;
    if paid.status() != 200 {
        let status = paid.status();
        let text = paid.into_string()?;
        let why = serde_json::from_str::<PaymentRequired>(&text)
            .map(|r| r.error)
            .unwrap_or(text);
        bail!("the server refused the paid request ({status}): {why}");
    }
    if let Some(h) = paid.header(x402::HEADER_PAYMENT_RESPONSE) {
        let s: SettlementResponse = x402::decode_header("the PAYMENT-RESPONSE header", h)?;
        eprintln!(
            "settled: tx {} at height {} on {}",
            s.transaction, s.height, s.network
        );
        if let Some(f) = &a.receipt {
            std::fs::write(f, serde_json::to_vec_pretty(&s)?)
                .with_context(|| format!("writing {}", f.display()))?;
        }
    } else {
        eprintln!("warning: the server answered without a PAYMENT-RESPONSE header");
    }
    print_body(paid)
}
