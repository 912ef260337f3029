// cosmjs against a MAGNET node: StargateClient queries and a SigningStargateClient MsgSend
// from a `magnet`-prefix DirectSecp256k1HdWallet. Exits non-zero on any mismatch.
//
// Env: MAGNET_RPC (http://127.0.0.1:26657), MAGNET_MNEMONIC (a funded genesis account),
//      MAGNET_CHAIN_ID (expected chain id).
import { StargateClient, SigningStargateClient, GasPrice, assertIsDeliverTxSuccess } from "@cosmjs/stargate";
import { DirectSecp256k1HdWallet } from "@cosmjs/proto-signing";
import assert from "node:assert/strict";

const rpc = process.env.MAGNET_RPC ?? "http://127.0.0.1:26657";
const mnemonic = process.env.MAGNET_MNEMONIC;
const chainId = process.env.MAGNET_CHAIN_ID;
assert.ok(mnemonic, "set MAGNET_MNEMONIC");

const wallet = await DirectSecp256k1HdWallet.fromMnemonic(mnemonic, { prefix: "magnet" });
const [sender] = await wallet.getAccounts();
const recipientWallet = await DirectSecp256k1HdWallet.generate(12, { prefix: "magnet" });
const [recipient] = await recipientWallet.getAccounts();

const q = await StargateClient.connect(rpc);
assert.equal(await q.getChainId(), chainId, "chain id from status.node_info.network");
const height = await q.getHeight();
assert.ok(height >= 1, `height ${height}`);
const before = await q.getBalance(sender.address, "umag");
assert.ok(BigInt(before.amount) > 10000n, `sender balance ${before.amount}`);
const acct = await q.getAccount(sender.address);
assert.equal(acct.address, sender.address);
const block = await q.getBlock();
assert.equal(block.header.chainId, chainId);

const client = await SigningStargateClient.connectWithSigner(rpc, wallet, { gasPrice: GasPrice.fromString("0.025umag") });
const fee = { amount: [{ denom: "umag", amount: "5000" }], gas: "200000" };
const res = await client.sendTokens(sender.address, recipient.address, [{ denom: "umag", amount: "1234" }], fee, "from cosmjs");
assertIsDeliverTxSuccess(res);
const got = await q.getBalance(recipient.address, "umag");
assert.equal(got.amount, "1234");
const all = await q.getAllBalances(recipient.address);
assert.deepEqual(all, [{ denom: "umag", amount: "1234" }]);
const tx = await q.getTx(res.transactionHash);
assert.equal(tx.code, 0);
assert.equal(tx.height, res.height);
const after = await q.getAccount(sender.address);
assert.equal(after.sequence, acct.sequence + 1);

// Not yet: fee "auto" (cosmjs simulates with SIGN_MODE_UNSPECIFIED and an empty signature,
// which magnet-app's /cosmos.tx.v1beta1.Service/Simulate rejects with code 102 today).

console.log(JSON.stringify({ ok: true, height: res.height, tx: res.transactionHash, gasUsed: String(res.gasUsed) }));
q.disconnect();
client.disconnect();
