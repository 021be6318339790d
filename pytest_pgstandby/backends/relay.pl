#!/usr/bin/perl
# pytest-pgstandby's relay for one replication link: listens on 127.0.0.1 (port ARGV[0],
# 0 = any free one), forwards every connection to ARGV[1]:ARGV[2], and once it listens
# prints "PORT PID" (to stdout, or to the file ARGV[3]). Node.partition() re-points a standby's primary_conninfo at it
# and stops it with SIGSTOP: bytes stop flowing both ways while the connections stay
# open, as across a cut network link. heal() sends SIGCONT. Perl, because it is on every
# Debian host and in the postgres images (postgresql-common is written in it).
use strict;
use warnings;
use IO::Select;
use IO::Socket::INET;

my ($listen_port, $host, $port, $report) = @ARGV;
die "usage: relay.pl LISTEN_PORT HOST PORT [REPORT_FILE]\n" unless defined $port;
my $server = IO::Socket::INET->new(
    LocalAddr => '127.0.0.1', LocalPort => $listen_port, Listen => 16, ReuseAddr => 1,
) or die "relay: cannot listen on 127.0.0.1:$listen_port: $!\n";
$| = 1;
if (defined $report) {
    open(my $out, '>', "$report.tmp") or die "relay: cannot write $report: $!\n";
    print $out $server->sockport, " $$\n";
    close $out;
    rename("$report.tmp", $report) or die "relay: cannot write $report: $!\n";
} else {
    print $server->sockport, " $$\n";
}

my $select = IO::Select->new($server);
my %other;
sub drop {
    for my $fh (@_) {
        next unless defined $fh;
        $select->remove($fh);
        delete $other{$fh};
        close $fh;
    }
}
while (1) {
    for my $fh ($select->can_read) {
        if ($fh == $server) {
            my $client = $server->accept or next;
            my $upstream = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port);
            if (!$upstream) { close $client; next; }
            $other{$client} = $upstream;
            $other{$upstream} = $client;
            $select->add($client, $upstream);
            next;
        }
        my $to = $other{$fh} or next;
        my $n = sysread($fh, my $buffer, 65536);
        if (!$n) { drop($fh, $to); next; }
        my $done = 0;
        while ($done < $n) {
            my $written = syswrite($to, $buffer, $n - $done, $done);
            if (!defined $written) { drop($fh, $to); last; }
            $done += $written;
        }
    }
}
