// Wraps a function body as a ViperGPT program for tests: `def execute_command(image):` and the body indented.

export function viperProgram(body: string): string {
  const indented = body
    .split('\n')
    .map((line) => `    ${line}`)
    .join('\n');
  return `def execute_command(image):\n${indented}\n`;
}
