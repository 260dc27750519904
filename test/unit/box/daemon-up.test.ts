import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { upArgs } from "../../../src/box/daemon-up.js";

describe("fourwall up through the box daemon", () => {
  it("takes the box's name out of up's command line, in each of its forms", () => {
    assert.deepEqual(upArgs(["--name", "a", "-w", "/x"]), { name: "a", rest: ["-w", "/x"] });
    assert.deepEqual(upArgs(["-w", "/x", "-n", "b"]), { name: "b", rest: ["-w", "/x"] });
    assert.deepEqual(upArgs(["--name=c", "-a", "x.test"]), { name: "c", rest: ["-a", "x.test"] });
  });

  it("leaves to the Node CLI a line without a name, with two, or with a name missing its value", () => {
    assert.equal(upArgs(["-w", "/x"]), undefined);
    assert.equal(upArgs(["--name", "a", "--name", "b"]), undefined);
    assert.equal(upArgs(["-n", "a", "--name=b"]), undefined);
    assert.equal(upArgs(["-w", "/x", "--name"]), undefined);
  });
});
