#!/bin/bash
# Time from each broker->bridge data segment to the bridge's ACK of it.
f=$1
BP=$(tshark -r $f -Y 'mqtt.msgtype==1' -d tcp.port==18883,mqtt -T fields -e tcp.srcport -e mqtt.clientid 2>/dev/null | grep doorbridge | cut -f1)
tshark -r $f -Y "tcp.port==$BP" -T fields -e frame.time_relative -e tcp.srcport -e tcp.seq -e tcp.len -e tcp.ack 2>/dev/null | python3 -c '
import sys
pend=[]; d=[]
for l in sys.stdin:
    t,sp,seq,ln,ack=l.split(); t=float(t); seq=int(seq); ln=int(ln); ack=int(ack)
    if sp=="18883" and ln>0: pend.append((seq+ln,t))
    elif sp!="18883":
        while pend and pend[0][0]<=ack: d.append((t-pend.pop(0)[1])*1000)
d.sort(); n=len(d)
print("broker->bridge segments %d, time to the bridge ACK: p50 %.3f ms p90 %.3f p99 %.3f max %.2f; over 1 ms: %d" % (n,d[n//2],d[int(n*.9)],d[min(n-1,int(n*.99))],d[-1],sum(1 for x in d if x>1)))'
