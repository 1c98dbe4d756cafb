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

/** A reported cost: null means no price was known ("unknown", never $0); known costs that
 * leave out requests of unknown price say so: "$0.25 + 3 unknown". */
export function costText(cost, unknownRequests = 0) {
  if (cost === null || cost === undefined) return "unknown";
  const unknown = Number(unknownRequests) || 0;
  return unknown > 0 ? `${money(cost)} + ${count(unknown)} unknown` : money(cost);
}

/** A length of time to come, coarse: "45 s", "12 min", "3 h 12 min", "4 d 2 h". */
export function duration(ms) {
  const minutes = Math.max(0, Math.round(ms / 60000));
  if (ms < 60000) return `${Math.max(0, Math.round(ms / 1000))} s`;
  if (minutes < 60) return `${minutes} min`;
  const hours = Math.floor(minutes / 60);
  if (hours < 48) return minutes % 60 ? `${hours} h ${minutes % 60} min` : `${hours} h`;
  const days = Math.floor(hours / 24);
  return hours % 24 ? `${days} d ${hours % 24} h` : `${days} d`;
}

/** When an ISO instant comes: "Dec 8, 00:00 (in 3 h 12 min)" in the reader's time zone. */
export function whenText(iso, now = Date.now()) {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return "";
  const local = at.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  return `${local} (in ${duration(at.getTime() - now)})`;
}

/** A plan's price from cents: "Free", "$12.00" (the billing period is the plan's own). */
export function planPrice(cents) {
  const value = Number(cents) || 0;
  return value > 0 ? money(value / 100) : "Free";
}
