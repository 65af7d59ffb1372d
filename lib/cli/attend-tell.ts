/** The program: bin/attend-tell, the npm scripts and the GPU bundle run this file. */
import { main } from "./index";

main(process.argv.slice(2)).catch((e: Error) => {
  console.error(`attend-tell: ${e.message}`);
  process.exit(1);
});
