# bench/courier.gp - bench/courier-wave.png, figure 1 of bench/courier.py (which calls it):
#   gnuplot -e "out='bench/courier-wave.png'" -e "files='A.dat B.dat'" \
#           -e "names='A:_Courier_alone B:_breakwater_in_front'" -e "cap=300" bench/courier.gp
# Each .dat (written by courier.py, one line a second): second, the wave's open connections,
# Courier's processes, its courieresmtpd processes, Courier's PSS (KiB), at its cap (0/1),
# breakwater's PSS (KiB, NaN without it), Courier's accept queue (connected, not yet accepted).
# Names: '_' stands for a space.
n = words(files)
if (!exists("cap")) { cap = 300 }
set terminal pngcairo size 1000, 380*n font "sans,10"
set output out
set datafile missing "NaN"
# the same scales in every panel, so that A and B compare at a glance
ymax = cap
y2max = 1
do for [i=1:n] {
    stats word(files, i) using 2 nooutput
    if (STATS_max > ymax) { ymax = STATS_max }
    stats word(files, i) using 3 nooutput
    if (STATS_max > ymax) { ymax = STATS_max }
    stats word(files, i) using ($5/1024) nooutput
    if (STATS_max > y2max) { y2max = STATS_max }
}
set multiplot layout n, 1
set grid
set key below horizontal
set xlabel "seconds"
set ylabel "connections, processes"
set y2label "memory (MiB)"
set yrange [0:ymax*1.1]
set y2range [0:y2max*1.1]
set y2tics
set ytics nomirror
do for [i=1:n] {
    set title sprintf("wave-1.tsv replay against Courier (MAXDAEMONS=%d), %s", cap, \
                      system("echo '".word(names, i)."' | tr _ ' '"))
    plot word(files, i) using 1:2 with lines lw 2 title "clients (wave): open connections", \
         ''             using 1:3 with lines lw 2 title "Courier: processes", \
         ''             using 1:4 with lines lw 2 title "Courier: courieresmtpd", \
         ''             using 1:8 with lines lw 1 title "Courier: accept queue (no greeting yet)", \
         ''             using 1:($5/1024) axes x1y2 with lines dt 2 title "Courier PSS (MiB, right)", \
         ''             using 1:($7/1024) axes x1y2 with lines dt 4 title "breakwater PSS (MiB, right)", \
         cap with lines dt 3 lw 2 lc rgb "red" title sprintf("Courier's cap (MAXDAEMONS=%d)", cap)
}
unset multiplot
