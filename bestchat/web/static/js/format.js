// Number formatting shared by pages.

/** A cost in US dollars; tiny amounts keep four decimals so they do not read as $0.00. */
export function money(value) {
  const amount = Number(value) || 0;
  return `$${amount.toFixed(amount > 0 && amount < 0.01 ? 4 : 2)}`;
}

/** A whole number with the reader's digit grouping: 96812 -> "96,812". */
export function count(value) {
  return (Number(value) || 0).toLocaleString();
}

/** A file size: "512 B", "12.3 KB", "4.0 MB" (powers of 1024). */
export function bytes(value) {
  let size = Number(value) || 0;
  if (size < 1024) return `${size} B`;
  for (const unit of ["KB", "MB", "GB"]) {
    size /= 1024;
    if (size < 1024 || unit === "GB") return `${size.toFixed(1)} ${unit}`;
  }
  return `${size} B`;
}
