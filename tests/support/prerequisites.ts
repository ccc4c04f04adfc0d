/** A missing tool or package the suite cannot run without; the runner prints its message as one line. */
export class PrerequisiteError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PrerequisiteError";
  }
}
