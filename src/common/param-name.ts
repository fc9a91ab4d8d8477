/**
 * A query-parameter or argument name as written to the name it stands for:
 * '+' is a space (form encoding) and %-escapes are decoded; a malformed
 * escape leaves the text as it is (never throws: the input is traffic).
 */
export function decodeParamName(raw: string): string {
  const plus = raw.replace(/\+/g, ' ');
  try {
    return decodeURIComponent(plus);
  } catch {
    return plus;
  }
}
