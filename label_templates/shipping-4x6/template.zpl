{# 4x6 in shipping label, 203 dpi (812 x 1218 dots). Every {{ value }} is escaped for ^FH field data. #}
^XA
^CI28
^PW812
^LL1218
^LH0,0

{# Ship-from, top left #}
^FO30,28^A0N,22,22^FDFROM^FS
^FO30,54^A0N,26,24^FH^FD{{ ship_from.name }}^FS
^FO30,84^A0N,24,22^FH^FD{{ ship_from.street }}^FS
^FO30,112^A0N,24,22^FH^FD{{ ship_from.city }}, {{ ship_from.region }} {{ ship_from.postal_code }} {{ ship_from.country }}^FS

{# Carrier and service, white on a black box, top right #}
^FO552,20^GB240,116,116^FS
^FO552,34^FR^A0N,52,44^FB240,1,0,C^FH^FD{{ shipment.carrier }}^FS
^FO552,94^FR^A0N,30,28^FB240,1,0,C^FH^FD{{ shipment.service | upper }}^FS
^FO20,150^GB772,4,4^FS

{# Ship-to #}
^FO30,170^A0N,24,24^FDSHIP TO^FS
^FO60,204^A0N,50,46^FH^FD{{ ship_to.name }}^FS
^FO60,262^A0N,38,34^FH^FD{{ ship_to.company | default('') }}^FS
^FO60,308^A0N,42,38^FH^FD{{ ship_to.street }}^FS
^FO60,356^A0N,42,38^FH^FD{{ ship_to.street2 | default('') }}^FS
^FO60,404^A0N,42,38^FH^FD{{ ship_to.city }}{% if ship_to.region %}, {{ ship_to.region }}{% endif %} {{ ship_to.postal_code }}^FS
^FO60,452^A0N,42,38^FH^FD{{ ship_to.country }}^FS
^FO60,502^A0N,24,22^FH^FD{{ ship_to.phone | default('') }}^FS
^FO20,540^GB772,4,4^FS

{# Service, weight and a QR code with tracking and order reference #}
^FO30,562^A0N,24,24^FDSERVICE^FS
^FO30,592^A0N,64,56^FH^FD{{ shipment.service | upper }}^FS
^FO30,676^A0N,24,24^FDWEIGHT^FS
^FO30,704^A0N,40,36^FH^FD{{ parcel.weight_kg }} kg / {{ parcel.weight_lb }} lb^FS
^FO590,556^BQN,2,5^FH^FDMA,{{ shipment.tracking }} {{ order.order_ref }}^FS
^FO20,770^GB772,4,4^FS

{# Tracking barcode #}
^FO30,790^A0N,24,24^FDTRACKING^FS
^FO60,824^BY3,3,190^BCN,190,Y,N,N^FH^FD{{ shipment.tracking | code128 }}^FS
^FO20,1070^GB772,4,4^FS

{# Order reference, contents and where it was packed #}
^FO30,1090^A0N,40,36^FH^FDORDER {{ order.order_ref }}^FS
^FO480,1096^A0N,30,28^FH^FD{{ lines | length }} lines, {{ lines | sum(attribute='qty') }} units^FS
^FO30,1150^A0N,22,20^FH^FDStation {{ station }}   Job {{ job_id }}   {{ printed_at }}^FS
^XZ
