// One Kafka client step against a broker, in a process of its own, through
// the KafkaJS API: kafkajs itself, or @confluentinc/kafka-javascript's
// KafkaJS-compatible API over librdkafka (their configs differ, the calls
// do not). run.js runs the steps and checks what they print.
//
//   node client.js LIB BOOTSTRAP create TOPIC PARTITIONS
//   node client.js LIB BOOTSTRAP produce TOPIC FIRST COUNT
//   node client.js LIB BOOTSTRAP consume TOPIC GROUP COUNT
//   node client.js LIB BOOTSTRAP offsets TOPIC GROUP
//
// LIB is kafkajs or confluent. Output lines run.js reads: "record P OFFSET
// KEY VALUE", "topic NAME", "end P OFFSET", "committed P OFFSET",
// "librdkafka VERSION". A failure exits 1 with one line on stderr.
'use strict';

const [lib, bootstrap, step, ...args] = process.argv.slice(2);

// Message i of a run: 13 keys, so each partition gets several keys and
// every key's records land in one partition in the order produced.
const keyOf = (i) => `key${i % 13}`;
const valueOf = (i) => `value-${i}`;

function client() {
    if (lib === 'kafkajs') {
        const { Kafka, logLevel } = require('kafkajs');
        const kafka = new Kafka({
            clientId: 'pagewire-test',
            brokers: [bootstrap],
            logLevel: logLevel.ERROR,
            retry: { retries: 5 },
        });
        return {
            kafka,
            producer: () =>
                kafka.producer({ idempotent: true, maxInFlightRequests: 1, allowAutoTopicCreation: false }),
            send: (p, topic, messages) => p.send({ topic, acks: -1, messages }),
            consumer: (groupId) => kafka.consumer({ groupId, sessionTimeout: 10000, rebalanceTimeout: 10000 }),
            subscribe: (c, topic) => c.subscribe({ topic, fromBeginning: true }),
            run: (c, eachMessage) => c.run({ autoCommit: false, eachMessage }),
        };
    }
    if (lib === 'confluent') {
        const { KafkaJS, librdkafkaVersion } = require('@confluentinc/kafka-javascript');
        console.log(`librdkafka ${librdkafkaVersion}`);
        const kafka = new KafkaJS.Kafka({
            kafkaJS: { clientId: 'pagewire-test', brokers: [bootstrap], logLevel: KafkaJS.logLevel.ERROR },
        });
        return {
            kafka,
            producer: () => kafka.producer({ kafkaJS: { idempotent: true, acks: -1 } }),
            send: (p, topic, messages) => p.send({ topic, messages }),
            consumer: (groupId) =>
                kafka.consumer({
                    kafkaJS: { groupId, fromBeginning: true, autoCommit: false, sessionTimeout: 10000 },
                }),
            subscribe: (c, topic) => c.subscribe({ topics: [topic] }),
            run: (c, eachMessage) => c.run({ eachMessage }),
        };
    }
    throw new Error(`unknown client library '${lib}' (kafkajs or confluent)`);
}

async function create(k, topic, partitions) {
    const admin = k.kafka.admin();
    await admin.connect();
    try {
        await admin.createTopics({ topics: [{ topic, numPartitions: Number(partitions), replicationFactor: 1 }] });
        for (const name of await admin.listTopics()) console.log(`topic ${name}`);
    } finally {
        await admin.disconnect();
    }
}

async function produce(k, topic, first, count) {
    const p = k.producer();
    await p.connect();
    try {
        const messages = [];
        for (let i = Number(first); i < Number(first) + Number(count); ++i)
            messages.push({ key: keyOf(i), value: valueOf(i) });
        // Batches of 50: several Produce requests per partition, in order.
        for (let at = 0; at < messages.length; at += 50) await k.send(p, topic, messages.slice(at, at + 50));
    } finally {
        await p.disconnect();
    }
}

// Consumes COUNT records, then waits a second more so that a record beyond
// them (a resume from a wrong offset) shows too; commits what it consumed.
async function consume(k, topic, group, count) {
    const c = k.consumer(group);
    await c.connect();
    let got = 0;
    const next = {};
    let reached;
    const all = new Promise((resolve) => (reached = resolve));
    await k.subscribe(c, topic);
    await k.run(c, async ({ partition, message }) => {
        console.log(`record ${partition} ${message.offset} ${message.key} ${message.value}`);
        next[partition] = (BigInt(message.offset) + 1n).toString();
        if (++got === Number(count)) reached();
    });
    const timeout = new Promise((_, reject) =>
        setTimeout(() => reject(new Error(`consumed ${got} of ${count} records in 60 s`)), 60000).unref(),
    );
    await Promise.race([all, timeout]);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    const offsets = Object.entries(next).map(([partition, offset]) => ({ topic, partition: Number(partition), offset }));
    await c.commitOffsets(offsets);
    await c.disconnect();
}

// The partitions' end offsets and the group's committed offsets (admin API).
async function offsets(k, topic, group) {
    const admin = k.kafka.admin();
    await admin.connect();
    try {
        for (const p of await admin.fetchTopicOffsets(topic)) console.log(`end ${p.partition} ${p.high}`);
        const [committed] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
        for (const p of committed.partitions) console.log(`committed ${p.partition} ${p.offset}`);
    } finally {
        await admin.disconnect();
    }
}

async function main() {
    const k = client();
    const steps = { create, produce, consume, offsets };
    if (!steps[step]) throw new Error(`unknown step '${step}'`);
    await steps[step](k, ...args);
}

main().then(
    () => process.exit(0),
    (err) => {
        console.error(`client.js ${lib} ${step}: ${err && err.stack ? err.stack : err}`);
        process.exit(1);
    },
);
