//! `magnetd devnet --serve`: after the asked epochs are settled, worker 0 serves the job's
//! lineage head (`magnet-worker serve --job J --home w0`, the model read from its store or the
//! network and checked against the chain's head hash) behind x402, and a funded client pays
//! for requests (issue 19, ADR 0110). The devnet checks every step against the chain:
//!
//! * an unpaid request gets 402 with machine-readable requirements (this chain, this server's
//!   operator, the price of this request);
//! * `magnet-worker pay` (the real client) pays and gets the answer plus a settlement receipt;
//!   the settling tx's effect on each lineage holder's balance — read at the block before and
//!   the block of the tx — equals the chain's split of the contributors' part by lineage
//!   shares, the server's and the burn's parts are the params' shares;
//! * a replayed, an underpaid, a wrong-chain, a wrong-payee and a malformed payment are
//!   refused, never served, and the refused ones never reach the chain.
//!
//! The report gains a "Serving" section and an API revenue column per node.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use cosmrs::proto::cosmos::bank::v1beta1::{QueryAllBalancesRequest, QueryAllBalancesResponse};
use magnet_client::tx::{FeeSpec, SignerData};
use magnet_client::x402::{self, PaymentRequired};
use magnet_client::{ChainClient, Key};
use magnet_core::Address;
use prost::Message;
use serde::Serialize;
use serde_json::{json, Value};

/// What the serving phase did and found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ServingReport {
    /// The server's URL.
    pub url: String,
    /// Which worker served.
    pub server: String,
    /// Price per token (umag).
    pub price_per_token: u128,
    /// The model id it served.
    pub model: String,
    /// Every check, in order.
    pub checks: Vec<ServeCheck>,
    /// Settled payments.
    pub payments: Vec<PaymentRow>,
    /// API revenue per operator (from the settling txs' transfers), umag.
    pub revenue: BTreeMap<String, u128>,
}

impl ServingReport {
    /// Whether every check passed.
    pub fn all_passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|c| c.passed)
    }
}

/// One check of the serving phase.
#[derive(Clone, Debug, Serialize)]
pub struct ServeCheck {
    /// What was tried.
    pub what: String,
    /// Whether the outcome was the expected one.
    pub passed: bool,
    /// What happened.
    pub detail: String,
}

/// One settled payment.
#[derive(Clone, Debug, Serialize)]
pub struct PaymentRow {
    /// Tx hash.
    pub tx: String,
    /// Block height.
    pub height: u64,
    /// umag paid.
    pub amount: u128,
    /// To the lineage holders, per operator.
    pub to_holders: BTreeMap<String, u128>,
}

/// One raw HTTP/1.1 exchange: (status, headers lower-cased, body).
fn http(
    addr: &str,
    path: &str,
    body: &str,
    payment: Option<&str>,
) -> Result<(u16, BTreeMap<String, String>, String)> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(Duration::from_secs(120)))?;
    let extra = payment
        .map(|p| format!("{}: {p}\r\n", x402::HEADER_PAYMENT_SIGNATURE))
        .unwrap_or_default();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n{extra}connection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut raw = String::new();
    s.read_to_string(&mut raw)?;
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("a malformed HTTP answer"))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| anyhow!("no HTTP status"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_lowercase(), v.trim().to_string()))
        .collect();
    Ok((status, headers, body.to_string()))
}

/// umag balance of `addr` at `height` (the state after that block).
async fn balance_at(c: &ChainClient, addr: &str, height: u64) -> Result<u128> {
    let req = QueryAllBalancesRequest {
        address: addr.to_string(),
        pagination: None,
        resolve_denom: false,
    };
    let b = c
        .query_at(
            magnet_client::rpc::PATH_ALL_BALANCES,
            req.encode_to_vec(),
            Some(height),
        )
        .await?;
    let r = QueryAllBalancesResponse::decode(b.as_slice())?;
    Ok(r.balances
        .iter()
        .filter(|c| c.denom == "umag")
        .filter_map(|c| c.amount.parse::<u128>().ok())
        .sum())
}

/// The server process; stopped (SIGINT, then kill) on drop.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        crate::devnet::stop_child(&mut self.0, Duration::from_secs(10));
    }
}

/// Runs the serving phase. `server_home` is worker 0's home, `client` a funded key kept in the
/// `test` keyring under `client_home` (name `client`).
#[allow(clippy::too_many_arguments)]
pub async fn run(
    c: &ChainClient,
    out: &Path,
    rpc_url: &str,
    worker_bin: &Path,
    job: u64,
    server: (&str, &Path, &str),
    client: (&Key, &Path),
    price_per_token: u128,
) -> Result<ServingReport> {
    let (server_name, server_home, server_operator) = server;
    let (client_key, client_home) = client;
    eprintln!("devnet: {server_name} serves job {job}'s lineage head at {price_per_token} umag per token (x402)");
    let log = std::fs::File::create(out.join("serve.log"))?;
    let mut child = Command::new(worker_bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--threads", "1"])
        .args(["--job", &job.to_string(), "--home"])
        .arg(server_home)
        .args(["--price-per-token", &price_per_token.to_string()])
        .arg("--advertise")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .context("starting magnet-worker serve")?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no stdout from serve"))?;
    let server_proc = Server(child);
    let addr = tokio::task::spawn_blocking(move || -> Result<String> {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        line.trim()
            .strip_prefix("listening on http://")
            .map(str::to_string)
            .ok_or_else(|| anyhow!("serve did not start (see serve.log): {line:?}"))
    })
    .await??;
    let model = format!("magnet-job-{job}");
    let mut rep = ServingReport {
        url: format!("http://{addr}"),
        server: server_name.to_string(),
        price_per_token,
        model: model.clone(),
        ..ServingReport::default()
    };
    let body = json!({"model": model, "prompt": "And God said", "max_tokens": 8, "temperature": 0})
        .to_string();
    let path = "/v1/completions";
    let check = |rep: &mut ServingReport, what: &str, passed: bool, detail: String| {
        eprintln!(
            "devnet: serving: {what}: {} ({detail})",
            if passed { "ok" } else { "FAILED" }
        );
        rep.checks.push(ServeCheck {
            what: what.to_string(),
            passed,
            detail,
        });
    };

    // 0. Listed on chain: a client finds the server through the registry (ADR 0109).
    let listed = crate::devnet::q(c, "/magnet.registry.v1/services", &job.to_string()).await?;
    let mine = listed.as_array().and_then(|a| {
        a.iter()
            .find(|l| l["operator"].as_str() == Some(server_operator))
            .cloned()
    });
    let want_url = format!("http://{addr}/v1");
    check(
        &mut rep,
        "the server is listed on chain (`/magnet.registry.v1/services`)",
        mine.as_ref().is_some_and(|l| {
            l["endpoint"].as_str() == Some(want_url.as_str())
                && l["job"].as_u64() == Some(job)
                && l["price_per_token"].as_str() == Some(price_per_token.to_string().as_str())
        }),
        format!("{}", mine.unwrap_or(Value::Null)),
    );

    // 1. Unpaid: 402 with the requirements.
    let (st, h, b) = http(&addr, path, &body, None)?;
    let required: Option<PaymentRequired> = h
        .get(&x402::HEADER_PAYMENT_REQUIRED.to_lowercase())
        .and_then(|v| x402::decode_header("PAYMENT-REQUIRED", v).ok());
    let status = c.status().await?;
    let chain_id = status.node_info.network.to_string();
    let Some(required) = required else {
        check(
            &mut rep,
            "unpaid request → 402 with requirements",
            false,
            format!("{st}: {b}"),
        );
        return Ok(rep);
    };
    let req = required.accepts[0].clone();
    let amount: u128 = req.amount.parse().unwrap_or(0);
    let want_amount =
        (req.extra.prompt_tokens as u128 + req.extra.max_tokens as u128) * price_per_token;
    check(
        &mut rep,
        "unpaid request → 402 with requirements",
        st == 402
            && req.pay_to == server_operator
            && req.network == x402::network(&chain_id)
            && req.extra.model == job
            && amount == want_amount
            && amount > 0
            && !b.contains("choices"),
        format!(
            "{st}, {} umag to {} on {} for job {} ({} prompt + {} max tokens)",
            req.amount,
            req.pay_to,
            req.network,
            req.extra.model,
            req.extra.prompt_tokens,
            req.extra.max_tokens
        ),
    );

    // 2. The real client pays.
    let params = crate::devnet::q(c, "/magnet.jobs.v1/params", "").await?;
    let ppm = |k: &str| params[k].as_u64().map(u128::from).unwrap_or(0);
    let receipt = out.join("receipt.json");
    let client_addr = client_key.address().to_string();
    let t = Instant::now();
    let paid = Command::new(worker_bin)
        .args(["pay", &format!("http://{addr}{path}"), "-d", &body])
        .args(["--from", "client", "--home"])
        .arg(client_home)
        .args([
            "--node",
            rpc_url,
            "--gas-price",
            "0",
            "--job",
            &job.to_string(),
        ])
        .args(["--max-amount", &(amount * 2).to_string(), "--receipt"])
        .arg(&receipt)
        .stdin(Stdio::null())
        .output()
        .context("running magnet-worker pay")?;
    let answer: Value = serde_json::from_slice(&paid.stdout).unwrap_or(Value::Null);
    let settled: Value = std::fs::read(&receipt)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(Value::Null);
    let ok = paid.status.success()
        && answer["choices"][0]["text"].is_string()
        && settled["success"] == true;
    check(
        &mut rep,
        "`magnet-worker pay` → 200 with the answer and a settlement receipt",
        ok,
        format!(
            "{:.1} s, tx {} at height {}; {}",
            t.elapsed().as_secs_f64(),
            settled["transaction"],
            settled["height"],
            String::from_utf8_lossy(&paid.stderr)
                .trim()
                .lines()
                .last()
                .unwrap_or_default()
        ),
    );
    if ok {
        let tx = settled["transaction"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let height = settled["height"].as_u64().unwrap_or(0);
        split_check(
            c,
            job,
            &mut rep,
            &tx,
            height,
            amount,
            server_operator,
            &client_addr,
            &ppm,
            check,
        )
        .await?;
    }

    // 3. Signed by the devnet itself: a good one, then the attacks.
    let sign = |amount: u128, chain: &str, pay_to: Option<&str>, seq: (u64, u64)| {
        let mut r = req.clone();
        if let Some(p) = pay_to {
            r.pay_to = p.to_string();
        }
        let fee = FeeSpec::at_price(200_000, "0")?;
        let signer = SignerData {
            chain_id: chain.to_string(),
            account_number: seq.0,
            sequence: seq.1,
        };
        let p = x402::pay_exact(client_key, &r, amount, None, &fee, &signer)?;
        anyhow::Ok(x402::encode_header(&p))
    };
    let me = client_key.address();
    let s0 = account_of(c, &me).await?;
    let good = sign(amount, &chain_id, None, s0)?;
    let (st, h, b) = http(&addr, path, &body, Some(&good))?;
    let resp = h
        .get(&x402::HEADER_PAYMENT_RESPONSE.to_lowercase())
        .and_then(|v| x402::decode_header::<x402::SettlementResponse>("PAYMENT-RESPONSE", v).ok());
    check(
        &mut rep,
        "a payment the devnet signed → 200 with PAYMENT-RESPONSE",
        st == 200 && resp.as_ref().is_some_and(|r| r.success) && b.contains("choices"),
        format!("{st}, {:?}", resp.as_ref().map(|r| &r.transaction)),
    );
    if let Some(r) = resp.filter(|_| st == 200) {
        split_check(
            c,
            job,
            &mut rep,
            &r.transaction,
            r.height,
            amount,
            server_operator,
            &client_addr,
            &ppm,
            check,
        )
        .await?;
    }
    let s1 = account_of(c, &me).await?;
    let attacks: Vec<(&str, String, u16, &str)> = vec![
        (
            "the same payment again (replay)",
            good.clone(),
            402,
            "replayed",
        ),
        (
            "an underpaid payment",
            sign(amount - 1, &chain_id, None, s1)?,
            402,
            "underpaid",
        ),
        (
            "a payment signed for another chain",
            sign(amount, "magnet-other-1", None, s1)?,
            402,
            "does not verify",
        ),
        (
            "a payment to another payee",
            sign(amount, &chain_id, Some(&client_addr), s1)?,
            402,
            "not to this server",
        ),
        (
            "a malformed payment header",
            "%%%".to_string(),
            400,
            "not base64",
        ),
        (
            "a payment at a stale sequence",
            sign(amount + 1, &chain_id, None, (s1.0, s1.1.saturating_sub(1)))?,
            402,
            "stale or replayed",
        ),
    ];
    for (what, header, want, why) in attacks {
        let (st, _, b) = http(&addr, path, &body, Some(&header))?;
        check(
            &mut rep,
            &format!("{what} → {want}, not served"),
            st == want && b.contains(why) && !b.contains("choices"),
            format!("{st}: {}", reason(&b)),
        );
    }
    let s2 = account_of(c, &me).await?;
    check(
        &mut rep,
        "refused payments never reached the chain",
        s2 == s1,
        format!("client sequence {} before, {} after", s1.1, s2.1),
    );

    // 4. The official `openai` Python client, its payment header signed by the devnet (x402
    // is transport-level: any HTTP client that can add a header can pay). Skipped when Python
    // has no `openai` package; the CI installer provides it.
    let py = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let has_openai = Command::new(&py)
        .args(["-c", "import openai"])
        .status()
        .is_ok_and(|s| s.success());
    if has_openai {
        let header = sign(amount, &chain_id, None, s2)?;
        let o = Command::new(&py)
            .args(["-c", OPENAI_CLIENT, &format!("http://{addr}/v1"), &model])
            .env("X402_PAYMENT", &header)
            .stdin(Stdio::null())
            .output()
            .context("running the openai client")?;
        let v: Value = serde_json::from_slice(&o.stdout).unwrap_or(Value::Null);
        let resp = v["payment_response"].as_str().and_then(|h| {
            x402::decode_header::<x402::SettlementResponse>("PAYMENT-RESPONSE", h).ok()
        });
        check(
            &mut rep,
            "the official `openai` client, paying with a PAYMENT-SIGNATURE header → answered",
            o.status.success() && v["text"].is_string() && resp.as_ref().is_some_and(|r| r.success),
            format!(
                "{:?}; {}",
                v["text"].as_str(),
                String::from_utf8_lossy(&o.stderr)
                    .lines()
                    .last()
                    .unwrap_or_default()
            ),
        );
        if let Some(r) = resp {
            split_check(
                c,
                job,
                &mut rep,
                &r.transaction,
                r.height,
                amount,
                server_operator,
                &client_addr,
                &ppm,
                check,
            )
            .await?;
        }
    } else {
        eprintln!(
            "devnet: serving: Python has no `openai` package; the openai-client check is skipped"
        );
    }
    drop(server_proc);
    Ok(rep)
}

/// The `openai` client's side: one completion with the payment header, printing the text and
/// the `PAYMENT-RESPONSE` header as JSON.
const OPENAI_CLIENT: &str = r#"
import json, os, sys
import openai
c = openai.OpenAI(base_url=sys.argv[1], api_key="unused", max_retries=0,
                  default_headers={"PAYMENT-SIGNATURE": os.environ["X402_PAYMENT"]})
r = c.completions.with_raw_response.create(model=sys.argv[2], prompt="And God said",
                                           max_tokens=8, temperature=0)
print(json.dumps({"text": r.parse().choices[0].text,
                  "payment_response": r.headers.get("payment-response")}))
"#;

/// The reason an error answer gives: x402's `error`, OpenAI's `error.message`, or the body.
fn reason(body: &str) -> String {
    let v: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    v["error"]
        .as_str()
        .or_else(|| v["error"]["message"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| body.chars().take(160).collect())
}

/// Account number and sequence of `a`.
async fn account_of(c: &ChainClient, a: &Address) -> Result<(u64, u64)> {
    c.account(a)
        .await?
        .map(|x| (x.account_number, x.sequence))
        .ok_or_else(|| anyhow!("{a} has no account"))
}

/// Checks one settlement: the client paid exactly `amount`; each lineage holder's balance
/// rose by exactly its split of the contributors' part (plus the server's part for the
/// server's operator), read at the block before and the block of the tx; records the revenue.
#[allow(clippy::too_many_arguments)]
async fn split_check(
    c: &ChainClient,
    job: u64,
    rep: &mut ServingReport,
    tx: &str,
    height: u64,
    amount: u128,
    server_operator: &str,
    client: &str,
    ppm: &dyn Fn(&str) -> u128,
    check: impl Fn(&mut ServingReport, &str, bool, String),
) -> Result<()> {
    let lineage: Value = serde_json::from_slice(
        &c.query_at(
            "/magnet.jobs.v1/lineage",
            job.to_string().into_bytes(),
            Some(height),
        )
        .await?,
    )?;
    let shares: Vec<(Address, u128)> = lineage["shares"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| Some((s[0].as_str()?.parse().ok()?, s[1].as_str()?.parse().ok()?)))
                .collect()
        })
        .unwrap_or_default();
    // The chain's own share rule (jobs `Msg::Pay`), not a re-derivation.
    let share = |k: &str| {
        magnet_core::math::ppm_of(amount, u64::try_from(ppm(k)).unwrap_or(u64::MAX)).unwrap_or(0)
    };
    let to_contrib = share("api_contributors_ppm");
    let to_server = share("api_server_ppm");
    let split =
        magnet_jobs::handler::split(to_contrib, &shares).map_err(|e| anyhow!("the split: {e}"))?;
    let mut expected: BTreeMap<String, u128> = BTreeMap::new();
    for (a, x) in &split {
        *expected.entry(a.to_string()).or_default() += x;
    }
    *expected.entry(server_operator.to_string()).or_default() += to_server;
    let mut mismatches = Vec::new();
    for (who, want) in &expected {
        let before = balance_at(c, who, height - 1).await?;
        let after = balance_at(c, who, height).await?;
        let got = after as i128 - before as i128;
        if got != *want as i128 {
            mismatches.push(format!("{who}: +{got}, expected +{want}"));
        }
    }
    let paid = balance_at(c, client, height - 1).await? as i128
        - balance_at(c, client, height).await? as i128;
    if paid != amount as i128 {
        mismatches.push(format!("the client paid {paid}, not {amount}"));
    }
    let holders: BTreeMap<String, u128> = split.iter().map(|(a, x)| (a.to_string(), *x)).collect();
    for (who, x) in &expected {
        *rep.revenue.entry(who.clone()).or_default() += x;
    }
    check(
        rep,
        &format!("settlement {tx}: balances moved by exactly the lineage split"),
        mismatches.is_empty() && !split.is_empty(),
        if mismatches.is_empty() {
            format!(
                "{amount} umag: {to_contrib} to {} lineage holders, {to_server} to the server, \
                 the rest burned or to the community pool",
                split.len()
            )
        } else {
            mismatches.join("; ")
        },
    );
    rep.payments.push(PaymentRow {
        tx: tx.to_string(),
        height,
        amount,
        to_holders: holders,
    });
    Ok(())
}

/// Fails with the failed checks, if any.
pub fn ensure_passed(rep: &ServingReport) -> Result<()> {
    let failed: Vec<String> = rep
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| format!("{}: {}", c.what, c.detail))
        .collect();
    if !failed.is_empty() {
        bail!("serving checks failed: {}", failed.join(" | "));
    }
    Ok(())
}
