export async function demoCommand(): Promise<number> {
  process.stderr.write("demo: not yet\n");
  return 1;
}
