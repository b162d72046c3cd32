# bench/plot.gp - the wave replay plot of BENCHMARKS.md (called by bench/report.py):
#   gnuplot -e "out='bench/wave-replay.png'" -e "files='a.dat b.dat'" -e "names='breakwater postscreen'" bench/plot.gp
# Each .dat: second, clients' open connections, front end's, backend's, front-end PSS (KiB; RSS if no PSS).
n = words(files)
set terminal pngcairo size 1000, 380*n font "sans,10"
set output out
set multiplot layout n, 1
set grid
set key top left
set xlabel "seconds"
set ylabel "open connections"
set y2label "front-end memory (MiB)"
set y2tics
set ytics nomirror
do for [i=1:n] {
    set title sprintf("wave-1.tsv replay, front end: %s", word(names, i))
    plot word(files, i) using 1:2 with lines lw 2 title "clients (wave)", \
         ''             using 1:3 with lines lw 2 title "front end", \
         ''             using 1:4 with lines lw 2 title "backend", \
         ''             using 1:($5/1024) axes x1y2 with lines dt 2 title "front-end PSS (MiB, right)"
}
unset multiplot
