import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { STAGES, runPipeline } from "../lib/captioning";
import { SPLIT_FILES, generateSynthetic } from "../lib/data";
import { captureLog, setupBackend, tmpDir } from "./helpers";

describe("the main job (npm start)", function () {
  this.timeout(600_000);
  before(setupBackend);

  it("reports on the test scenes, which no stopping or selection saw, and times each stage", async () => {
    const dataDir = path.join(tmpDir(), "scenes");
    await generateSynthetic(dataDir, { n: 40, seed: 5 });
    const out = path.join(tmpDir(), "run");
    const featuresDir = path.join(tmpDir(), "features"); // the project's data/features is the user's
    let summary: Awaited<ReturnType<typeof runPipeline>> | undefined;
    const printed = await captureLog(async () => {
      summary = await runPipeline({
        data: "synthetic",
        dataDir,
        out,
        batchSize: 16,
        epochs: 2,
        quick: true,
        skipMissing: false,
        featuresDir,
      });
    });
    const s = summary!;
    assert.ok(fs.existsSync(path.join(featuresDir, "index.json")), "the features are cached where asked");
    const testImages = fs.readFileSync(path.join(dataDir, SPLIT_FILES.test), "utf8").trim().split("\n");
    assert.equal(s.split, "test");
    assert.deepEqual(
      s.samples.map((x) => x.image),
      testImages.slice(0, 6),
    );
    for (const x of s.samples) assert.ok(typeof x.correct === "boolean" && x.truth!.length >= 1, x.image);
    const metrics = JSON.parse(fs.readFileSync(path.join(out, "metrics-test.json"), "utf8"));
    assert.equal(metrics.n_images, testImages.length);
    assert.equal(typeof metrics.beam["1"].sceneAccuracy, "number");
    assert.ok(!fs.existsSync(path.join(out, "metrics-dev.json")), "nothing is reported on dev");
    assert.ok(fs.existsSync(path.join(out, "captions-test-beam3.json")));
    // dev is scored after every epoch, for the terminal only: it never stops the fixed schedule
    assert.equal(s.epochs, 2);
    assert.equal(s.sceneScores!.length, 2);
    assert.deepEqual(Object.keys(s.stages), [...STAGES]);
    const staged = STAGES.reduce((t, k) => t + s.stages[k], 0);
    assert.ok(STAGES.every((k) => s.stages[k] >= 0) && staged <= s.seconds + 1e-9, `${staged} of ${s.seconds} s`);
    assert.ok(s.stages.training > 0 && s.stages.features > 0);
    assert.deepEqual(JSON.parse(fs.readFileSync(path.join(out, "summary.json"), "utf8")).stages, s.stages);
    const text = printed.join("\n");
    assert.match(text, /test scenes: \d+\.\d% captioned exactly right, greedy/);
    assert.match(
      text,
      /time: +\d+ s in all \(scenes \d+ s, features \d+ s, training \d+ s, evaluation \d+ s, report \d+ s\)/,
    );
    assert.match(fs.readFileSync(s.report, "utf8"), /Metrics \(test, 4 images\)/);
  });
});
