// ctest's driver for one npm Kafka client (issue 15): starts `pagewire
// broker` on a free port with a fresh data dir, then runs client.js steps,
// each a new process: create a 3-partition topic (CreateTopics), produce 300
// keyed records (idempotent, acks all), consume them in a group and commit,
// produce 100 more, consume again in a new process (exactly those 100, from
// the committed offsets), read end and committed offsets with the admin API.
//
//   node run.js kafkajs|confluent PAGEWIRE_CLI
//
// Exit 0 when every check holds, 1 with the failed checks, 77 (ctest's
// SKIP_RETURN_CODE) with the reason when the client is not installed.
'use strict';

const { spawn, spawnSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const [lib, cli] = process.argv.slice(2);
const modules = { kafkajs: 'kafkajs', confluent: '@confluentinc/kafka-javascript' };
const kSkip = 77;
const kTopic = 'orders';
const kGroup = `${lib}-group`;

const failures = [];
function check(ok, what) {
    if (!ok) failures.push(what);
    return ok;
}

function installed() {
    try {
        require.resolve(modules[lib], { paths: [__dirname] });
        return true;
    } catch {
        return false;
    }
}

// `pagewire broker` on 127.0.0.1:0; resolves with the process and its
// port once it printed its listening line.
function startBroker(dataDir) {
    const broker = spawn(
        cli,
        ['broker', '--data', dataDir, '--listen', '127.0.0.1:0', '--workers', '2', '--no-auto-create',
            // Segments are preallocated: small ones on a shared disk.
            '--segment-bytes', '2M'],
        { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    return new Promise((resolve, reject) => {
        let out = '';
        const timer = setTimeout(() => reject(new Error(`no listening line in 20 s: '${out}'`)), 20000);
        broker.on('error', reject);
        broker.on('exit', (code, signal) => reject(new Error(`broker exited (${code ?? signal}): '${out}'`)));
        broker.stdout.on('data', (chunk) => {
            out += chunk;
            const m = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
            if (m) {
                clearTimeout(timer);
                broker.removeAllListeners('exit');
                resolve({ broker, port: Number(m[1]) });
            }
        });
    });
}

// A client.js step in its own process; its output's lines split in words.
function step(bootstrap, ...args) {
    const r = spawnSync(process.execPath, [path.join(__dirname, 'client.js'), lib, bootstrap, ...args], {
        encoding: 'utf8',
        timeout: 90000,
    });
    const ok = r.status === 0;
    check(ok, `${args[0]}: exit ${r.status ?? r.signal ?? r.error}\n${r.stdout}${r.stderr}`);
    return { ok, lines: r.stdout.split('\n').filter((l) => l !== '').map((l) => l.split(' ')) };
}

// "record" lines: every value in [first, first+count) once, offsets and
// produce order increasing per partition, each key in one partition,
// records in all 3 partitions. Returns each partition's first and next offset.
function checkRecords(lines, first, count) {
    const records = lines.filter((w) => w[0] === 'record');
    const seen = new Set();
    const partitionOfKey = new Map();
    const parts = new Map();
    for (const [, p, offsetText, key, value] of records) {
        const offset = Number(offsetText);
        const index = Number(value.replace('value-', ''));
        check(!seen.has(value), `${value} consumed twice`);
        seen.add(value);
        check(key === `key${index % 13}`, `${value} has key ${key}`);
        if (partitionOfKey.has(key)) check(partitionOfKey.get(key) === p, `${key} in partitions ${partitionOfKey.get(key)} and ${p}`);
        partitionOfKey.set(key, p);
        const last = parts.get(p);
        if (last) {
            check(offset > last.next - 1, `partition ${p}: offset ${offset} after ${last.next - 1}`);
            check(index > last.index, `partition ${p}: ${value} after value-${last.index}`);
            parts.set(p, { start: last.start, next: offset + 1, index });
        } else {
            parts.set(p, { start: offset, next: offset + 1, index });
        }
    }
    for (let i = first; i < first + count; ++i) check(seen.has(`value-${i}`), `value-${i} not consumed`);
    check(records.length === count, `${records.length} records consumed, ${count} produced`);
    check(parts.size === 3, `records in ${parts.size} partitions, not 3`);
    return parts;
}

async function main() {
    if (!modules[lib]) throw new Error(`unknown client library '${lib}' (kafkajs or confluent)`);
    if (!installed()) {
        const log = path.join(__dirname, '.install.log');
        console.log(`SKIP: ${modules[lib]} is not installed in ${__dirname}/node_modules ` +
            `(scripts/install-node-clients.sh installs it${fs.existsSync(log) ? `; its log: ${log}` : ''})`);
        return kSkip;
    }
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pagewire-node-'));
    let broker;
    try {
        const started = await startBroker(path.join(dir, 'data'));
        broker = started.broker;
        const bs = `127.0.0.1:${started.port}`;

        const created = step(bs, 'create', kTopic, '3');
        check(created.lines.some((w) => w[0] === 'topic' && w[1] === kTopic), `listTopics: no ${kTopic}`);
        const version = created.lines.find((w) => w[0] === 'librdkafka');
        if (version) console.log(`${modules[lib]} over librdkafka ${version[1]}`);

        if (step(bs, 'produce', kTopic, '0', '300').ok) {
            const first = checkRecords(step(bs, 'consume', kTopic, kGroup, '300').lines, 0, 300);
            if (step(bs, 'produce', kTopic, '300', '100').ok) {
                // A new consumer process of the group: it resumes where the first committed.
                const second = checkRecords(step(bs, 'consume', kTopic, kGroup, '100').lines, 300, 100);
                for (const [p, { start }] of second) {
                    const committed = first.get(p);
                    check(committed && start === committed.next,
                        `partition ${p}: resumed at ${start}, committed ${committed && committed.next}`);
                }
                const offsets = step(bs, 'offsets', kTopic, kGroup).lines;
                const end = new Map(offsets.filter((w) => w[0] === 'end').map((w) => [w[1], Number(w[2])]));
                const committed = new Map(offsets.filter((w) => w[0] === 'committed').map((w) => [w[1], Number(w[2])]));
                check(end.size === 3, `fetchTopicOffsets: ${end.size} partitions`);
                check([...end.values()].reduce((a, b) => a + b, 0) === 400, `end offsets ${[...end]} do not sum to 400`);
                for (const [p, { next }] of second) {
                    check(end.get(p) === next, `partition ${p}: end offset ${end.get(p)}, consumed to ${next}`);
                    check(committed.get(p) === next, `partition ${p}: committed ${committed.get(p)}, consumed to ${next}`);
                }
            }
        }
        broker.kill('SIGTERM');
        const [code, signal] = await new Promise((resolve) => broker.on('exit', (c, s) => resolve([c, s])));
        broker = undefined;
        check(code === 0, `broker stopped with ${code ?? signal}`);
    } finally {
        if (broker) broker.kill('SIGKILL');
        fs.rmSync(dir, { recursive: true, force: true });
    }
    for (const f of failures) console.log(`FAIL: ${f}`);
    if (failures.length === 0) console.log(`${modules[lib]}: all checks passed`);
    return failures.length === 0 ? 0 : 1;
}

main().then(
    (code) => process.exit(code),
    (err) => {
        console.log(`run.js ${lib}: ${err && err.stack ? err.stack : err}`);
        process.exit(1);
    },
);
