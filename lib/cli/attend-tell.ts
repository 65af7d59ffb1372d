/** The program: bin/attend-tell, the npm scripts and the GPU bundle run this file. */
import { main } from "./index";
import { explainWriteError } from "../util/io";

main(process.argv.slice(2)).catch((e: Error) => {
  console.error(`attend-tell: ${(explainWriteError(e) as Error).message}`);
  process.exit(1);
});
