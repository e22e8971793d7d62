# plot.gp — the benchmark charts, called by plot.sh with:
#   gnuplot -e "peers='FILE'; series='FILE'; outdir='DIR'; title2='TEXT'" load/plot.gp
# peers:  table.py's TSV (system, trades_per_s, bytes_per_trade, rss_mib_per_million, load_s)
# series: slotload --csv (second, trades_per_s, acked, errors, p50_us, p99_us)
# Either may be '' to skip its chart.

set encoding utf8
set datafile separator "\t"
navy = "#1f4e79"; orange = "#d9822b"; grey = "#555555"

# ---- (a) peers: bytes per trade and trades/s, one bar per system ---------
if (strlen(peers) > 0) {
  # noenhanced: "__slots__" is a name, not a subscript
  set terminal pngcairo noenhanced size 1300,620 font "DejaVu Sans,11"
  set output outdir."/peers.png"
  set multiplot layout 1,2 title "slotd vs peers: the same W1 trades, one run" font ",14"
  set style data histograms
  set style histogram clustered gap 1
  set style fill solid 0.85 border -1
  set boxwidth 0.8
  set grid ytics lc rgb "#dddddd"
  set xtics rotate by -35 left nomirror font ",10"
  set ytics nomirror
  set key off
  set border 3
  set bmargin 10
  set rmargin 6
  set yrange [0:*]

  # Two bars per system: the system's own accounting, and RSS growth per
  # trade (MiB per million x 2^20 / 1e6 = bytes per trade).
  set title "memory per trade (lower is better)"
  set ylabel "bytes per trade"
  set key top right
  plot peers using 3:xtic(1) lc rgb navy title "own accounting", \
       '' using ($4*1.048576) lc rgb "#8fb3d9" title "RSS growth", \
       '' using ($0-0.2):3:(sprintf("%.0f", $3)) with labels offset 0,0.8 font ",9" tc rgb grey notitle, \
       '' using ($0+0.2):($4*1.048576):(sprintf("%.0f", $4*1.048576)) with labels offset 0,0.8 font ",9" tc rgb grey notitle
  set key off

  set title "ingest: trades per second (higher is better)"
  set ylabel "million trades/s"
  plot peers using ($2/1e6):xtic(1) lc rgb orange, \
       '' using 0:($2/1e6):(sprintf("%.2f", $2/1e6)) with labels offset 0,0.8 font ",10" tc rgb grey
  unset multiplot
  unset output
  reset
}

# ---- (b) slotload's per-second series: throughput and p99 ----------------
if (strlen(series) > 0) {
  set datafile separator ","
  set terminal pngcairo noenhanced size 1200,560 font "DejaVu Sans,11"
  set output outdir."/timeseries.png"
  set title "slotd ingest, per second: ".title2 font ",13"
  set xlabel "seconds"
  set ylabel "million trades/s acked" tc rgb navy
  set y2label "p99 ack latency, ms" tc rgb orange
  set ytics nomirror tc rgb navy
  set y2tics tc rgb orange
  set yrange [0:*]
  set y2range [0:*]
  set grid xtics ytics lc rgb "#dddddd"
  set key below horizontal
  # The p99 target at half the peak rate: 2 ms.
  set arrow from graph 0, second 2 to graph 1, second 2 nohead dt 3 lw 1.5 lc rgb "#aa3333"
  set label "2 ms" at graph 1, second 2 offset 0.5,0 tc rgb "#aa3333" font ",9"
  set border 11
  set rmargin 12
  set bmargin 6
  set offsets 0, 0, graph 0.12, 0 # headroom above the throughput line
  plot series every ::1 using 1:($2/1e6) with linespoints lw 2 pt 7 ps 0.6 lc rgb navy title "trades/s", \
       '' every ::1 using 1:($6/1e3) axes x1y2 with linespoints lw 2 pt 5 ps 0.6 lc rgb orange title "p99 latency", \
       '' every ::1 using 1:($5/1e3) axes x1y2 with lines lw 1 dt 2 lc rgb orange title "p50 latency"
  unset output
}
