import { strict as assert } from "node:assert";
import { SceneObject } from "../lib/data";
import { attentionCorrectness, captionCorrect, mentionedObjects, peakInBox } from "../lib/captioning";

const red: SceneObject = { shape: "square", color: "red", size: "small", box: [64, 96, 96, 128] }; // exactly cell (row 3, col 2) of 32-px cells
const blue: SceneObject = { shape: "circle", color: "blue", size: "large", box: [150, 10, 220, 80] };

describe("synthetic scenes: are the captions and the attention right?", () => {
  it("finds the objects a caption names (a size may sit between colour and shape)", () => {
    const m = mentionedObjects("a small red square to the left of a blue circle".split(" "));
    assert.deepEqual(m, [
      { color: "red", shape: "square", index: 3 },
      { color: "blue", shape: "circle", index: 10 },
    ]);
    assert.deepEqual(mentionedObjects("a square".split(" ")), []);
  });

  it("calls a caption right only when it names exactly the scene's objects", () => {
    assert.equal(captionCorrect("a blue circle above a red square".split(" "), [red, blue]), true);
    assert.equal(captionCorrect("a red square".split(" "), [red, blue]), false, "one object missing");
    assert.equal(captionCorrect("a red square and a green circle".split(" "), [red]), false, "an extra object");
    assert.equal(captionCorrect("a red circle".split(" "), [red]), false, "wrong shape");
  });

  it("scores attention on the named object's box: one-hot on its cell, elsewhere, and uniform", () => {
    const words = "a small red square".split(" ");
    const onehot = (r: number) => Array.from({ length: 49 }, (_, i) => (i === r ? 1 : 0));
    const cell = 3 * 7 + 2; // row 3, col 2 (row-major, as the encoder's regions)
    const hit = attentionCorrectness([{ words, alphas: [[], [], [], onehot(cell)], objects: [red] }]);
    assert.deepEqual(hit, { objectWords: 1, pointing: 1, massInBox: 1, uniformMass: 1 / 49 });
    const transposed = attentionCorrectness([{ words, alphas: [[], [], [], onehot(2 * 7 + 3)], objects: [red] }]);
    assert.equal(transposed.pointing, 0, "row and column swapped must miss");
    assert.equal(transposed.massInBox, 0);
    // by offset from the shape word: the map two words before it ("small") scored against the same box
    const early = { words, alphas: [[], onehot(cell), [], onehot(0)], objects: [red] };
    assert.equal(attentionCorrectness([early], 224, 7, -2).pointing, 1);
    assert.equal(attentionCorrectness([early], 224, 7, "shape").pointing, 0);
    assert.equal(attentionCorrectness([early], 224, 7, 1).objectWords, 0, "no word after the caption's end");
    // the grid is read from α's length: on the 14×14 grid red's 32-px box is cells (6…7, 4…5)
    const fine = (r: number) => Array.from({ length: 196 }, (_, i) => (i === r ? 1 : 0));
    assert.equal(attentionCorrectness([{ words, alphas: [[], [], [], fine(7 * 14 + 5)], objects: [red] }]).pointing, 1);
    assert.equal(attentionCorrectness([{ words, alphas: [[], [], [], fine(5 * 14 + 7)], objects: [red] }]).pointing, 0);
    assert.equal(
      attentionCorrectness([{ words, alphas: [[], [], [], fine(6 * 14 + 4)], objects: [red] }]).massInBox,
      1,
    );
    const uniform = attentionCorrectness([{ words, alphas: [[], [], [], Array(49).fill(1 / 49)], objects: [red] }]);
    assert.ok(Math.abs(uniform.massInBox - 1 / 49) < 1e-12);
    assert.equal(
      attentionCorrectness([{ words: "a green square".split(" "), alphas: [[], [], onehot(0)], objects: [red] }])
        .objectWords,
      0,
      "objects not in the scene are not scored",
    );
  });

  it("peakInBox: the most attended region's centre, inside the box or on its edge", () => {
    const alpha = Array.from({ length: 49 }, (_, i) => (i === 3 * 7 + 2 ? 0.3 : i === 0 ? 0.2 : 0.5 / 47));
    assert.equal(peakInBox(alpha, red.box), true);
    assert.equal(peakInBox(alpha, blue.box), false);
    // the centre of cell (3, 2) is (80, 112): a box ending there still holds it, one pixel short does not
    assert.equal(peakInBox(alpha, [0, 0, 80, 112]), true);
    assert.equal(peakInBox(alpha, [0, 0, 79, 112]), false);
    assert.equal(peakInBox(alpha, [0, 0, 160, 224], 448), true, "a 448-px picture's cells are 64 px");
  });
});
