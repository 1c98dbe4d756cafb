// Number formatting shared by pages.

/** A cost in US dollars; tiny amounts keep four decimals so they do not read as $0.00. */
export function money(value) {
  const amount = Number(value) || 0;
  return `$${amount.toFixed(amount > 0 && amount < 0.01 ? 4 : 2)}`;
}
