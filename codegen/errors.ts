/** A codegen error that points at a source line. */
export class CodegenError extends Error {
  constructor(
    readonly file: string,
    readonly line: number,
    message: string,
  ) {
    super(`${file}:${line}: ${message}`);
    this.name = 'CodegenError';
  }
}
