<?php
// The page of the real-server tests (tests/vm/guest/t_50_apache.sh,
// t_51_phpfpm.sh): it exercises the interpreter (arrays, strings, regular
// expressions, JSON, hashing, dates) so that the workers hold the memory a
// PHP application gives them, and its body is the same on every request, so
// that "the server answers exactly as before" after a merge is a byte
// comparison. Nothing in it depends on time, pid or worker.
declare(strict_types=1);

function primes(int $count): array
{
    $primes = [];
    for ($n = 2; count($primes) < $count; $n++) {
        $isPrime = true;
        foreach ($primes as $p) {
            if ($p * $p > $n) {
                break;
            }
            if ($n % $p === 0) {
                $isPrime = false;
                break;
            }
        }
        if ($isPrime) {
            $primes[] = $n;
        }
    }
    return $primes;
}

$primes = primes(2000);
$words = [];
foreach (str_split(hash('sha256', implode(',', $primes)), 4) as $i => $chunk) {
    $words[sprintf('w%02d', $i)] = strrev($chunk) . ':' . crc32($chunk);
}
ksort($words);
$text = preg_replace_callback('/[0-9]+/', fn ($m) => dechex((int) $m[0]), implode(' ', array_slice($primes, 0, 50)));
$date = (new DateTimeImmutable('@1700000000'))->setTimezone(new DateTimeZone('UTC'))->format(DATE_ATOM);
$doc = json_encode(['words' => $words, 'hex' => $text, 'date' => $date], JSON_PRETTY_PRINT);

header('Content-Type: text/html; charset=utf-8');
?>
<!DOCTYPE html>
<html>
<head><title>mergemem VM test page</title></head>
<body>
<h1>mergemem VM test page</h1>
<p>PHP <?= PHP_MAJOR_VERSION . '.' . PHP_MINOR_VERSION ?>, <?= count($primes) ?> primes, the last <?= end($primes) ?>, sum <?= array_sum($primes) ?>.</p>
<pre><?= htmlspecialchars($doc) ?></pre>
<p>sha1 <?= sha1($doc) ?></p>
</body>
</html>
